"""Everything a trainer builds from or beside its model lives where training puts the model.

On a GPU, accelerate's prepare moves the model from the CPU, where it was loaded, to CUDA. A tensor built from the
model before that (a reference snapshot) or loaded on another device (a reward model on ``cuda:0`` in process 3)
then meets the model's activations at the first rollout, KL or measurement, and the job stops there. A CPU has no
second device to move to, so these tests have accelerate place the model on the meta device
(``ACCELERATE_TORCH_DEVICE=meta``): each trainer builds its state as on a GPU, is stopped where its first step
would start, and every tensor that state holds must be on the meta device with the model.
"""

import dataclasses

import pytest
import torch
from conftest import last_turn_prompts, save_new_lm, save_segment_reward_models

import rrhf.training.online_rrhf
import rrhf.training.ppo
from rrhf.io import write_parquet
from rrhf.training.loop import Trainer
from scored_sets import scored_set

TRAINING = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 2, "max_length": 96, "seed": 0, "warmup_ratio": 0.0}
PROMPTS = {"limit": 8, "seed": 0, "key": "data.train_prompts"}
PPO = {"num_rollouts": 4, "chunk_size": 4, "ppo_epochs": 1, "total_steps": 2,
       "generation": {"max_new_tokens": 8, "top_k": 0, "top_p": 1.0, "temperature": 1.0},
       "training": {**TRAINING, "lr_schedule": "constant"}}


class Stopped(Exception):
    """Raised where a trainer's first step would start, carrying the state it built."""

    def __init__(self, **state):
        super().__init__("stopped before the first step")
        self.state = state


@pytest.fixture
def meta_placement(monkeypatch):
    """accelerate's device is the meta device for this test (its state built afresh before and after)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    monkeypatch.setenv("ACCELERATE_TORCH_DEVICE", "meta")
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def stop_at_first_step(monkeypatch):
    """Stop every trainer where its first step would start: the shared loop's first pass, PPO's first rollouts,
    online RRHF's first samples."""
    def stop_trainer(self, *args, **kwargs):
        raise Stopped(model=self.model, optimiser=[p for group in self.optimizer.param_groups
                                                   for p in group["params"]], monitor=self.monitor)

    def stop_rollouts(context, *args, **kwargs):
        raise Stopped(context=context)

    def stop_sampling(model, context, *args, **kwargs):
        raise Stopped(model=model, context=context)

    monkeypatch.setattr(Trainer, "run_epochs", stop_trainer)
    monkeypatch.setattr(rrhf.training.ppo, "collect_rollouts", stop_rollouts)
    monkeypatch.setattr(rrhf.training.online_rrhf, "draw_samples", stop_sampling)


def held_tensors(value, path: str, seen: set[int]):
    """(path, tensor) of every tensor ``value`` holds: a module's parameters and buffers, the items of dicts,
    lists and tuples, and the fields of the project's own objects (references, monitors, rollout contexts)."""
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, torch.nn.Module):
        for name, tensor in [*value.named_parameters(), *value.named_buffers()]:
            yield f"{path}.{name}", tensor
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from held_tensors(item, f"{path}[{key!r}]", seen)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from held_tensors(item, f"{path}[{index}]", seen)
    elif type(value).__module__.startswith("rrhf.") and hasattr(value, "__dict__"):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)} \
            if dataclasses.is_dataclass(value) else vars(value)
        for name, item in fields.items():
            yield from held_tensors(item, f"{path}.{name}", seen)


def assert_all_on_meta(stopped: Stopped, expected: set[str]):
    """Every tensor of the state is on the meta device, and the state holds each of ``expected`` (path parts)."""
    seen: set[int] = set()
    found = [item for name, value in stopped.state.items() for item in held_tensors(value, name, seen)]
    elsewhere = [f"{path} on {tensor.device}" for path, tensor in found if tensor.device.type != "meta"]
    assert not elsewhere, f"{len(elsewhere)} tensors not where the model is: {elsewhere[:6]}"
    for part in expected:
        assert any(part in path for path, _ in found), f"no {part} in the state: {[p for p, _ in found][:10]}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tokenizer_dir, synthetic_frame, tiny_lm_dir, tiny_reward_dir):
    """A two-layer LLaMA-style policy, pairs, a scored set, DPO examples with rho's log-probabilities, and the
    three fine-grained reward models (random heads)."""

    from rrhf.studies.preference_methods.examples import method_examples
    from rrhf.studies.preference_methods.reference_logprobs import compute_reference_logprobs

    folder = tmp_path_factory.mktemp("placement")
    policy = save_new_lm(folder / "policy", tokenizer_dir, {"family": "llama", "n_layer": 2, "n_embd": 32,
                                                            "n_head": 2})
    frame = synthetic_frame.head(16).copy()
    frame["prompt"] = last_turn_prompts(frame)
    write_parquet(frame, folder / "pairs.parquet", {"stage": "test"})
    write_parquet(scored_set(frame, 8), folder / "scored.parquet", {"stage": "test"})
    examples = method_examples(scored_set(frame, 8), "pairs", "best_worst", "prompt_mean")
    write_parquet(examples, folder / "examples.parquet", {"stage": "test"})
    compute_reference_logprobs(str(policy), str(folder / "examples.parquet"), str(folder / "reference.parquet"),
                               {"max_length": 96, "max_tokens_per_forward": 4096, "batch_size": 8,
                                "prompt_sharing": "separate"}, "cpu")
    segment_models = save_segment_reward_models(folder, tiny_lm_dir)
    return {"folder": folder, "policy": str(policy), "reward": str(tiny_reward_dir), "segments": segment_models}


def run_until_stopped(train, *args, **kwargs) -> Stopped:
    with pytest.raises(Stopped) as stopped:
        train(*args, **kwargs)
    return stopped.value


def test_sft_state_is_where_the_model_is(inputs, meta_placement, stop_at_first_step):
    from rrhf.training.language_model import train_sft

    folder = inputs["folder"]
    stopped = run_until_stopped(train_sft, inputs["policy"], str(folder / "pairs.parquet"), str(folder / "sft"),
                                {"kind": "sft", "init": "policy", "dataset": "pairs", "training": TRAINING}, {})
    assert_all_on_meta(stopped, {"model", "optimiser"})


def test_reward_model_state_is_where_the_model_is(inputs, meta_placement, stop_at_first_step):
    from rrhf.training.reward_model import train_reward_model

    folder = inputs["folder"]
    stopped = run_until_stopped(train_reward_model, inputs["policy"], str(folder / "pairs.parquet"),
                                str(folder / "pairs.parquet"), str(folder / "rm"),
                                {"kind": "reward", "dataset": "pairs", "training": TRAINING}, {})
    assert_all_on_meta(stopped, {"score.weight", "optimiser"})


def test_rrhf_and_its_reward_monitor_are_where_the_model_is(inputs, meta_placement, stop_at_first_step):
    """Figure 3's monitor holds a reward model: it must be on this process's device, not the first GPU's."""
    from rrhf.training.rrhf import train_rrhf

    folder = inputs["folder"]
    rrhf = {"training": TRAINING, "reward_during_training": {"every_steps": 1, "prompts": 2, "max_new_tokens": 4}}
    stopped = run_until_stopped(train_rrhf, inputs["policy"], str(folder / "scored.parquet"), str(folder / "rrhf"),
                                rrhf, {}, reward_model=inputs["reward"], scoring={})
    assert_all_on_meta(stopped, {"model", "optimiser", "monitor.reward_model"})


def test_dpo_state_is_where_the_model_is(inputs, meta_placement, stop_at_first_step):
    from rrhf.studies.preference_methods.trainer import train_preference_method

    folder = inputs["folder"]
    stopped = run_until_stopped(train_preference_method, inputs["policy"], str(folder / "examples.parquet"),
                                str(folder / "reference.parquet"), str(folder / "dpo"), "DPO", {"beta": 0.1},
                                {"training": TRAINING}, {})
    assert_all_on_meta(stopped, {"model", "optimiser"})


@pytest.mark.parametrize("unfrozen", [None, 1])
def test_ppo_reference_value_head_and_reward_model_are_where_the_policy_is(inputs, meta_placement,
                                                                           stop_at_first_step, unfrozen):
    """rho's snapshot (all trained weights, or trlX's hydra: the top layer's) is taken from the placed policy."""
    folder = inputs["folder"]
    stopped = run_until_stopped(rrhf.training.ppo.train_ppo, inputs["policy"], inputs["reward"],
                                str(folder / "pairs.parquet"), str(folder / "ppo"),
                                {**PPO, "num_layers_unfrozen": unfrozen}, {}, PROMPTS, {})
    assert_all_on_meta(stopped, {"policy.value_head", "reference.snapshot", "reward_model"})


def test_fine_grained_ppo_reward_models_are_where_the_policy_is(inputs, meta_placement, stop_at_first_step):
    folder = inputs["folder"]
    fine_grained = {"models": inputs["segments"], "weights": {"relevance": 0.3, "factuality": 0.5,
                                                              "completeness": 0.3},
                    "reward_scaling": "whiten", "marker_position": "after", "max_length": 96}
    stopped = run_until_stopped(rrhf.training.ppo.train_ppo, inputs["policy"], inputs["reward"],
                                str(folder / "pairs.parquet"), str(folder / "fg_ppo"), PPO, {}, PROMPTS, {},
                                fine_grained=fine_grained)
    assert_all_on_meta(stopped, {"reference.snapshot", "segment_rewarder.models['factuality']",
                                 "segment_rewarder.models['completeness']"})


def test_online_rrhf_with_kl_reference_and_reward_model_are_where_the_policy_is(inputs, meta_placement,
                                                                                stop_at_first_step):
    folder = inputs["folder"]
    sampling = {"seed": 0, "batch_size": 4, "samplers": {"top_p": {"num_responses": 2, "max_new_tokens": 8}}}
    stopped = run_until_stopped(rrhf.training.online_rrhf.train_online_rrhf, inputs["policy"], inputs["reward"],
                                str(folder / "pairs.parquet"), str(folder / "online"), {"training": TRAINING},
                                {"steps_per_sample": 1, "kl_coef": 0.1, "sampler": "top_p"}, sampling, {}, PROMPTS,
                                {})
    assert_all_on_meta(stopped, {"context.reference.snapshot", "context.reward_model", "model.model.layers"})


def test_the_check_finds_a_snapshot_left_behind(inputs, meta_placement):
    """The check itself: a reference taken before the model moves stays on the CPU, and is reported."""
    from rrhf.models.loading import load_causal_lm
    from rrhf.models.value_head_policy import FrozenReference

    model, _ = load_causal_lm(inputs["policy"])
    reference = FrozenReference(model)
    model.to("meta")
    with pytest.raises(AssertionError, match=r"snapshot\['model.embed_tokens.weight'\] on cpu"):
        assert_all_on_meta(Stopped(model=model, reference=reference), {"model"})
