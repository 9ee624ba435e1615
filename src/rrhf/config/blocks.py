"""One typed object per config block, built from the validated config.

Each class mirrors a block of config/schema.yaml field for field and has no defaults of its own: the schema's
are the only ones. :meth:`Block.from_config` builds one from the block as the validated config holds it (every
key present) and raises naming the key for a missing or an unknown one; :meth:`Block.with_defaults` checks a
few keys against the schema and fills in its defaults first. Rules pass blocks as the plain dicts of the config
(Snakemake re-runs a job when a plain param changes, not when an object does); a stage's entry point builds the
object once with :meth:`Block.coerce` and hands it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rrhf.config.typed_config import Block, optional

# --- training --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lora(Block):
    """LoRA adapters (``$defs/training.lora``)."""

    SCHEMA: ClassVar[str] = "$defs/training.lora"
    r: int
    alpha: float
    dropout: float
    target_modules: list[str] | None


@dataclass(frozen=True)
class Training(Block):
    """Hyper-parameters of one training run (``$defs/training``: every build's, ``rrhf.training``,
    ``ppo.training``)."""

    SCHEMA: ClassVar[str] = "$defs/training"
    epochs: float
    learning_rate: float
    batch_size: int
    gradient_accumulation_steps: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    max_length: int
    seed: int
    adam_betas: list[float]
    adam_epsilon: float
    lr_schedule: str
    layers_trained: int | None
    lora: Lora | None = optional()


@dataclass(frozen=True)
class Precision(Block):
    """``precision``: number formats and memory savers of every model-running job."""

    SCHEMA: ClassVar[str] = "precision"
    dtype: str
    mixed_precision: str
    gradient_checkpointing: bool


@dataclass(frozen=True)
class Tracking(Block):
    """``tracking``: the trackers every trainer logs its training log to (rrhf.training.tracking)."""

    SCHEMA: ClassVar[str] = "tracking"
    trackers: list[str]
    project: str
    folder: str


@dataclass(frozen=True)
class Checkpoints(Block):
    """``checkpoints``: resume checkpoints of every trainer."""

    SCHEMA: ClassVar[str] = "checkpoints"
    folder: str | None
    every_steps: int
    every_minutes: float
    keep: bool


@dataclass(frozen=True)
class Architecture(Block):
    """``models.NAME.build.architecture``: family and size of a new LM."""

    SCHEMA: ClassVar[str] = "$defs/build.architecture"
    family: str
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int


@dataclass(frozen=True)
class OnPolicy(Block):
    """``models.NAME.build.on_policy``: preference pairs on the policies' own replies for a reward build."""

    SCHEMA: ClassVar[str] = "$defs/build.on_policy"
    policies: list[str]
    prompts: int
    held_out: float
    temperature: float
    top_p: float
    max_new_tokens: int
    batch_size: int
    seed: int


@dataclass(frozen=True)
class Build(Block):
    """``models.NAME.build``: the recipe of a model built locally (tokenizer, pretrain, sft or reward)."""

    SCHEMA: ClassVar[str] = "$defs/build"
    kind: str
    dataset: str
    vocab_size: int
    max_examples: int | None
    backbone_layers: int | None
    architecture: Architecture
    training: Training
    init: str | None = optional()
    tokenizer: str | None = optional()
    on_policy: OnPolicy | None = optional()


# --- data, sampling, scoring -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Data(Block):
    """``data``: which dataset the experiment uses, and how many of its prompts."""

    SCHEMA: ClassVar[str] = "data"
    dataset: str
    train_prompts: int | None
    test_prompts: int | None
    selection_seed: int
    max_prompt_tokens: int | None


@dataclass(frozen=True)
class PromptSubset(Block):
    """The prompts of one split a stage uses: ``data.train_prompts`` or ``data.test_prompts`` of them (None:
    all), drawn with ``data.selection_seed``; ``key`` names the count's config key in errors. Made by
    :meth:`rrhf.plan.plan.Plan.prompt_subset`, so that a training stage does not re-run when the test count
    changes."""

    limit: int | None
    seed: int
    key: str
    max_tokens: int | None = optional()  # data.max_prompt_tokens: a model answering one reads at most its last these


@dataclass(frozen=True)
class Sampler(Block):
    """``sampling.samplers.NAME``: one sampling method's parameters."""

    SCHEMA: ClassVar[str] = "$defs/sampler"
    num_responses: int
    max_new_tokens: int
    num_beams: int
    num_beam_groups: int
    diversity_penalty: float
    top_p: float
    temperature: float


@dataclass(frozen=True)
class Sampling(Block):
    """``sampling``: how responses are sampled from each policy. A sampling job gets the block with only its
    own sampler (:meth:`rrhf.plan.plan.Plan.sampling_for`)."""

    SCHEMA: ClassVar[str] = "sampling"
    batch_size: int
    seed: int
    samplers: dict[str, Sampler]

    def sampler(self, name: str) -> Sampler:
        if name not in self.samplers:
            raise ValueError(f"sampling.samplers: no {name!r}; this block has {sorted(self.samplers)}")
        return self.samplers[name]


@dataclass(frozen=True)
class Scoring(Block):
    """``scoring``: reward-model scoring (and the evaluation LM's perplexity)."""

    SCHEMA: ClassVar[str] = "scoring"
    batch_size: int
    max_length: int
    prompt_sharing: str


# --- RRHF, resampling, PPO -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RewardDuringTraining(Block):
    """``rrhf.reward_during_training``: the policy's greedy reward every few steps (Figure 3)."""

    SCHEMA: ClassVar[str] = "rrhf.reward_during_training"
    every_steps: int
    prompts: int
    max_new_tokens: int


@dataclass(frozen=True)
class RRHF(Block):
    """``rrhf``: RRHF training. A training job gets it with its setting's ``rank_weight``
    (:meth:`rrhf.plan.plan.Plan.rrhf_for`)."""

    SCHEMA: ClassVar[str] = "rrhf"
    training: Training
    rank_weight: float
    length_penalty: float
    ft_reduction: str
    max_tokens_per_forward: int
    prompt_sharing: str
    reward_during_training: RewardDuringTraining


@dataclass(frozen=True)
class Resampling(Block):
    """``resampling``: the setting IP-n and OP-k follow, and OP-k+KL's coefficient."""

    SCHEMA: ClassVar[str] = "resampling"
    setting: str
    kl_coef: float
    online_batch_size: int | None


@dataclass(frozen=True)
class OnlineSchedule(Block):
    """What an OP-{k}[+KL] setting means for train_online_rrhf: sample every ``steps_per_sample`` optimiser
    steps with ``sampler`` (the resampling setting's), with ``kl_coef`` (resampling.kl_coef with +KL, else 0).
    Made by :meth:`rrhf.plan.plan.Plan.online_for` from the setting's name."""

    steps_per_sample: int
    kl_coef: float
    sampler: str


@dataclass(frozen=True)
class KLControl(Block):
    """``ppo.kl``: the coefficient of PPO's per-token KL penalty."""

    SCHEMA: ClassVar[str] = "ppo.kl"
    controller: str
    init_coef: float
    target: float
    horizon: float


@dataclass(frozen=True)
class RolloutSampling(Block):
    """``ppo.generation``: how PPO samples its rollouts."""

    SCHEMA: ClassVar[str] = "ppo.generation"
    max_new_tokens: int
    top_k: int
    top_p: float
    temperature: float


@dataclass(frozen=True)
class PPO(Block):
    """``ppo``: the PPO baseline (trlX's HH settings by default)."""

    SCHEMA: ClassVar[str] = "ppo"
    training: Training
    total_steps: int
    num_rollouts: int
    chunk_size: int
    ppo_epochs: int
    num_layers_unfrozen: int | None
    gamma: float
    lam: float
    cliprange: float
    cliprange_value: float
    vf_coef: float
    kl: KLControl
    scale_reward: str
    cliprange_reward: float | None
    delta_reward: bool
    generation: RolloutSampling


# --- evaluation and resources ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BestOfN(Block):
    """``evaluation.best_of_n``: n top-p samples per test prompt, the highest-reward one kept."""

    SCHEMA: ClassVar[str] = "evaluation.best_of_n"
    top_p: float
    temperature: float
    max_new_tokens: int
    seed: int
    batch_size: int


@dataclass(frozen=True)
class Decoding(Block):
    """``evaluation.decoding``: how an evaluated policy writes its one reply per test prompt."""

    SCHEMA: ClassVar[str] = "evaluation.decoding"
    method: str
    max_new_tokens: int
    num_beams: int
    top_p: float
    temperature: float
    seed: int
    batch_size: int


@dataclass(frozen=True)
class Evaluation(Block):
    """``evaluation``: evaluation on the test prompts."""

    SCHEMA: ClassVar[str] = "evaluation"
    best_of_n: BestOfN
    decoding: Decoding


@dataclass(frozen=True)
class RuleResources(Block):
    """``resources.rules.RULE``: the resources of one rule that replace the defaults (absent: the default)."""

    SCHEMA: ClassVar[str] = "$defs/resources"
    gpu: int | None = optional()
    mem_mb: int | None = optional()
    runtime: int | None = optional()
    cpus_per_task: int | None = optional()
    gpu_memory_gib: float | None = optional()


@dataclass(frozen=True)
class Resources(Block):
    """``resources``: cluster resources of the heavy rules, and per-rule overrides."""

    SCHEMA: ClassVar[str] = "resources"
    gpu: int
    mem_mb: int
    runtime: int
    cpus_per_task: int
    gpu_memory_gib: float
    rules: dict[str, RuleResources]

    def gpu_memory_for(self, rule: str) -> float:
        """Memory of one of ``rule``'s GPUs in GiB: its own entry's, else the default."""
        own = self.rules.get(rule, RuleResources()).gpu_memory_gib
        return own if own is not None else self.gpu_memory_gib

    def for_rule(self, rule: str) -> dict[str, int]:
        """{gpu, cpus_per_task, mem_mb, runtime} of ``rule``: its own entry's values, the defaults for the rest."""
        own = self.rules.get(rule, RuleResources())
        return {key: getattr(own, key) if getattr(own, key) is not None else getattr(self, key)
                for key in ("gpu", "cpus_per_task", "mem_mb", "runtime")}


# Every block of the config that has a typed object: {top-level key: class}.
TOP_LEVEL_BLOCKS: dict[str, type[Block]] = {
    "rrhf": RRHF, "ppo": PPO, "sampling": Sampling, "scoring": Scoring, "evaluation": Evaluation,
    "resampling": Resampling, "checkpoints": Checkpoints, "precision": Precision, "resources": Resources,
    "data": Data, "tracking": Tracking,
}


@dataclass(frozen=True)
class SegmentWeights(Block):
    """``fine_grained.weights``: the reward magnitude of each reward model (0 removes it)."""

    SCHEMA: ClassVar[str] = "fine_grained.weights"
    relevance: float
    factuality: float
    completeness: float
