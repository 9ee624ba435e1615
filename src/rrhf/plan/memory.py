"""GPU memory per process, the parts an estimate is made of, and the check of a plan's estimates.

An estimate (:class:`RuleMemory`, made per rule by rrhf.plan.memory_plan) is the sum of named parts, each in
bytes per process as torch's allocator counts them: the weights in the dtype they are held in, gradients and
AdamW's two moments of what trains (divided over the processes under FSDP, on the CPU with FSDP's offload), the
activations a training step keeps for its backward pass, the other models a job holds (reward model, reference,
a copy gathered from FSDP's shards) and the key/value cache of generation. A rule fits when its estimate, with
10 % for the allocator's fragmentation and 1 GiB for the CUDA context, is within ``resources.gpu_memory_gib``,
and the host memory its job needs while loading weights is within its ``mem_mb`` (:func:`memory_problems`).
The activation constants were measured on LLaMA-style blocks (benchmarks/memory_estimates.py); ``make gpu-check``
compares the estimates with a GPU's measured peaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from rrhf.plan.model_facts import ModelFacts

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

GIB = 2 ** 30
CUDA_CONTEXT = GIB  # the CUDA context and library workspaces, which torch's allocator does not count
FRAGMENTATION = 1.10  # what the caching allocator holds beyond what is allocated
PROCESS_HOST = 3 * GIB  # host memory of one process besides weights: Python, torch, CUDA's libraries
# Bytes a transformer block keeps for the backward pass per token: (per hidden unit, per MLP unit), with float32
# activations and under bf16 autocast (LLaMA-style blocks with sdpa attention: benchmarks/memory_estimates.py).
BLOCK_ACTIVATIONS = {4: (40, 16), 2: (34, 8)}
KL_BATCH = 16  # rrhf.evaluation.generations.KL_BATCH_SIZE: responses per forward of the two models
RULES_LAUNCHED = {"pretrain_lm", "train_sft", "train_reward_model", "train_rrhf", "train_online_rrhf",
                  "train_preference_method"}  # the rules that run under accelerate launch with their GPUs


@dataclass
class RuleMemory:
    """One rule's estimate: ``parts`` (bytes per process, as torch's allocator counts them), the host memory its
    job needs at load, how its processes share the work, and the case it was sized for."""

    rule: str
    gpus: int
    layout: str
    case: str
    parts: dict[str, int] = field(default_factory=dict)
    host: int = 0

    @property
    def allocated(self) -> int:
        return sum(self.parts.values())

    @property
    def needed(self) -> int:
        """What the GPU must have: the estimate, the allocator's fragmentation and the CUDA context."""
        return int(self.allocated * FRAGMENTATION) + CUDA_CONTEXT


@dataclass(frozen=True)
class Layout:
    """How a training rule's processes hold the model: how many, sharded with FSDP or not, offloaded or not."""

    processes: int
    fsdp: bool = False
    offload: bool = False

    @property
    def shards(self) -> int:
        return self.processes if self.fsdp else 1

    def describe(self) -> str:
        if self.fsdp:
            return f"FSDP over {self.processes}" + (", offload" if self.offload else "")
        return f"DDP x {self.processes}" if self.processes > 1 else "1 process"


def training_layout(plan: "Plan", rule: str) -> Layout:
    """The layout ``rule``'s job trains in: accelerate launch with one process per GPU and the config's
    accelerate_config where the rule is launched, else one process."""
    gpus = plan.rule_resources(rule)["gpu"]
    launched = rule in RULES_LAUNCHED and (gpus > 1 or plan.accelerate_config)
    if not launched:
        return Layout(1)
    accelerate = yaml.safe_load(Path(plan.accelerate_config).read_text()) if plan.accelerate_config else {}
    fsdp = accelerate.get("distributed_type") == "FSDP"
    offload = bool((accelerate.get("fsdp_config") or {}).get("fsdp_offload_params"))
    return Layout(max(1, gpus), fsdp, offload)


def inference_bytes(plan: "Plan") -> int:
    """Bytes per weight of the models that only run forward: precision.dtype (auto is bf16 on a GPU)."""
    return 4 if plan.precision.dtype == "float32" else 2


def activation_bytes(plan: "Plan") -> int:
    """Bytes per activation in training: 2 under mixed precision (auto is bf16 on a GPU), else 4."""
    return 4 if plan.precision.mixed_precision == "no" else 2


# --- what a config asks for ----------------------------------------------------------------------------------


def sequences_of(plan: "Plan", sampler: str, batch_size: int | None = None) -> int:
    """Sequences a generation batch of ``sampler`` runs at once: prompts (``batch_size``, by default the sampling
    block's) x beams (beam samplers) or replies."""
    spec = plan.sampling.sampler(sampler)
    beams = spec.num_beams if sampler in ("beam", "diverse_beam") else spec.num_responses
    return (batch_size or plan.sampling.batch_size) * beams


def replies_per_prompt(plan: "Plan") -> int:
    """The most replies one training query has: a setting's sampler's replies, plus the two provided ones."""
    most = 2
    for spec in plan.settings.values():
        source = plan.settings.get(spec.get("training_set"), spec)
        sampled = plan.sampling.sampler(source["sampler"]).num_responses if source.get("sampler") else 0
        most = max(most, sampled + (2 if source.get("provided") else 0))
    return most


def lora_parameters(facts: ModelFacts, lora) -> int:
    """Adapters' parameters with peft's default targets (query and value projections) at rank ``lora.r``."""
    return 2 * facts.layers * lora.r * (facts.hidden + facts.hidden)


# --- the parts -------------------------------------------------------------------------------------------------

def training_state(facts: ModelFacts, trainable: int, layout: Layout) -> dict[str, int]:
    """float32 weights, gradients of what trains and AdamW's two moments, per process: divided over the processes
    under FSDP, on the host (none on the GPU) with FSDP's offload; FSDP's gathered units come in ``buffers``."""
    if layout.offload:
        state = {"weights": 0, "gradients": 0, "optimizer": 0}
    else:
        state = {"weights": 4 * facts.parameters // layout.shards, "gradients": 4 * trainable // layout.shards,
                 "optimizer": 8 * trainable // layout.shards}
    if layout.fsdp:  # two blocks gathered in bf16 (one prefetched), one block's float32 gradients, the embeddings
        state["buffers"] = 2 * 2 * facts.block_parameters + 4 * facts.block_parameters + 2 * facts.embedding_parameters
    return state


def block_activations(facts: ModelFacts, tokens: int, dtype_bytes: int, checkpointing: bool, layers: int) -> int:
    """What ``layers`` blocks keep for the backward pass over ``tokens`` tokens; with gradient checkpointing each
    keeps its float32 input and one block's activations are recomputed at a time."""
    per_hidden, per_intermediate = BLOCK_ACTIVATIONS[dtype_bytes]
    one = tokens * (per_hidden * facts.hidden + per_intermediate * facts.intermediate)
    return tokens * 4 * facts.hidden * layers + one if checkpointing else one * layers


def logits(facts: ModelFacts, tokens: int, dtype_bytes: int) -> int:
    """The LM head's output over ``tokens`` scored tokens, its float32 log-softmax kept for the backward pass and
    its gradient."""
    return tokens * facts.vocabulary * (dtype_bytes + 4 + 4)


def kv_cache(facts: ModelFacts, sequences: int, length: int, dtype_bytes: int) -> int:
    """Keys and values of ``sequences`` sequences of ``length`` tokens, over every layer."""
    return sequences * length * facts.kv_bytes_per_token(dtype_bytes)


def forward_pass(facts: ModelFacts, sequences: int, length: int, dtype_bytes: int) -> int:
    """The largest tensors of one block's forward pass without gradients (the MLP's intermediates), which exist one
    block at a time."""
    return sequences * length * (2 * facts.hidden + 3 * facts.intermediate) * dtype_bytes


def generation(facts: ModelFacts, sequences: int, new_tokens: int, dtype_bytes: int,
               length: int | None = None) -> dict[str, int]:
    """The cache and the prompt's forward pass of generating ``sequences`` sequences of ``length`` tokens in all:
    by default as long as the model's positions allow (sampling cuts longer prompts to the last positions -
    new_tokens tokens)."""
    length = min(length or facts.positions or 2048, facts.positions or 2048)
    prompt = max(1, length - new_tokens)
    return {"cache": kv_cache(facts, sequences, length, dtype_bytes),
            "activations": forward_pass(facts, sequences, prompt, dtype_bytes) + 4 * sequences * facts.vocabulary}


def weights(facts: ModelFacts, dtype_bytes: int) -> int:
    return facts.parameters * dtype_bytes


def add(parts: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    return {key: parts.get(key, 0) + more.get(key, 0) for key in {**parts, **more}}


def host_at_load(facts: ModelFacts, layout: Layout) -> int:
    """Host memory of a training job while its processes load: one float32 copy where only the first reads the
    weights (FSDP's cpu_ram_efficient_loading, as envs/accelerate/fsdp_*.yaml set), else one per process; FSDP's
    offload keeps weights, gradients and optimiser state there for good."""
    if layout.offload:
        return 16 * facts.parameters + 4 * facts.parameters + layout.processes * PROCESS_HOST
    copies = 1 if layout.fsdp else layout.processes
    return copies * 4 * facts.parameters + layout.processes * PROCESS_HOST


def memory_problems(plan: "Plan", estimates: list[RuleMemory]) -> list[str]:
    """Each rule of ``estimates`` that does not fit its GPUs' memory or its job's host memory, with the figures."""
    problems = []
    for estimate in estimates:
        gpu = plan.resources.gpu_memory_for(estimate.rule) * GIB
        if estimate.needed > gpu:
            parts = ", ".join(f"{key} {value / GIB:.1f}" for key, value in estimate.parts.items() if value)
            problems.append(f"{estimate.rule}: needs {estimate.needed / GIB:.1f} GiB per GPU ({parts}; "
                            f"{estimate.layout}; {estimate.case}) but resources.gpu_memory_gib is {gpu / GIB:g}: "
                            "give it more GPUs under FSDP, LoRA, gradient checkpointing or smaller batches")
        host = plan.rule_resources(estimate.rule)["mem_mb"] * 2 ** 20
        if estimate.host > host:
            problems.append(f"{estimate.rule}: needs {estimate.host / GIB:.1f} GiB of host memory while loading "
                            f"({estimate.layout}) but its mem_mb is {host / 2 ** 20:.0f}; raise "
                            f"resources.rules.{estimate.rule}.mem_mb")
    return problems


def memory_table(plan: "Plan", estimates: list[RuleMemory]) -> str:
    """The plan as a text table: per rule its GPUs, layout, parts and total per GPU (GiB), and host memory."""
    header = ("rule", "GPUs", "layout", "weights", "grads", "optim", "activ", "other", "cache", "buffers",
              "GPU GiB", "of", "host GiB", "of")
    rows = [header]
    for e in estimates:
        p = {key: e.parts.get(key, 0) / GIB for key in ("weights", "gradients", "optimizer", "activations",
                                                         "other models", "cache", "buffers")}
        rows.append((e.rule, str(e.gpus), e.layout, *(f"{value:.1f}" for value in p.values()),
                     f"{e.needed / GIB:.1f}", f"{plan.resources.gpu_memory_for(e.rule):g}", f"{e.host / GIB:.0f}",
                     f"{plan.rule_resources(e.rule)['mem_mb'] / 1024:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in rows)
