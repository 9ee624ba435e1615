"""LoRA adapters (training.lora): only the adapters (and new heads) train, the saved model has them merged, and
every trainer that takes them runs with them, on tiny real models."""

import contextlib
import copy
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from conftest import last_turn_prompts
from safetensors import safe_open

import rrhf.training.ppo
from rrhf.io import write_parquet
from rrhf.models.adapters import (
    DEFAULTS,
    adapter_parameter_names,
    adapters_disabled,
    add_lora,
    has_lora,
    lora_config,
    merge_lora,
)
from rrhf.models.loading import load_causal_lm, load_reward_model
from rrhf.models.value_head_policy import CausalLMWithValueHead, FrozenReference
from rrhf.training.loop import Trainer, TrainingResult
from scored_sets import scored_set

LORA = {"r": 4}
TRAINING = {"epochs": 2, "learning_rate": 1e-2, "batch_size": 4, "max_length": 64, "seed": 0, "warmup_ratio": 0.0,
            "lora": LORA}
IDS = torch.tensor([[5, 17, 42, 8, 99, 3], [7, 7, 120, 64, 2, 11]])
MASK = torch.ones_like(IDS)


@contextlib.contextmanager
def watched_training():
    """Record the parameters each Trainer starts from (``initial``), the trained model as TrainingResult.save
    receives it, adapters not yet merged (``trained``, a copy), and PPO's reference (``reference``)."""
    seen = {}
    trainer_init, result_save = Trainer.__init__, TrainingResult.save

    def init(self, model, *args, **kwargs):
        seen["initial"] = {name: p.detach().clone() for name, p in model.named_parameters()}
        trainer_init(self, model, *args, **kwargs)

    def save(self, *args, **kwargs):
        seen["trained"] = copy.deepcopy(self.plain_model)
        result_save(self, *args, **kwargs)

    class Reference(FrozenReference):
        def __init__(self, lm):
            super().__init__(lm)
            seen["reference"] = self

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "__init__", init)
        patch.setattr(TrainingResult, "save", save)
        patch.setattr(rrhf.training.ppo, "FrozenReference", Reference)
        yield seen


def base_weights(peft_model) -> dict[str, torch.Tensor]:
    """The base weights of a peft model under the plain model's names (adapters and trained head copies left
    out; a head peft trains in full is compared through its frozen original)."""
    weights = {}
    for name, p in peft_model.named_parameters():
        if "lora_" in name or ".modules_to_save." in name:
            continue
        name = name.removeprefix("base_model.model.").replace(".base_layer", "").replace(".original_module", "")
        weights[name] = p
    return weights


def assert_only_adapters_trained(trained_peft, original, initial: dict[str, torch.Tensor], prefix: str = ""):
    """Every base weight of ``trained_peft`` equals ``original``'s; every adapter tensor moved from ``initial``
    (the parameters training started from, names with ``prefix``)."""
    base = base_weights(trained_peft)
    assert set(base) == set(dict(original.named_parameters()))
    for name, p in original.named_parameters():
        assert torch.equal(base[name], p), name
    names = adapter_parameter_names(trained_peft)
    assert names and any("lora_A" in n for n in names) and any("lora_B" in n for n in names)
    params = dict(trained_peft.named_parameters())
    for name in names:
        assert params[name].requires_grad
        assert not torch.equal(params[name], initial[prefix + name]), name


def saved_keys(folder) -> list[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return list(handle.keys())


def assert_merged(folder, trained_peft, initial_model, loader=load_causal_lm):
    """``folder`` holds a plain model (no adapter keys) that ``loader`` loads, that differs from
    ``initial_model`` and computes what the trained peft model does."""
    assert saved_keys(folder) and not any("lora" in key or "base_layer" in key for key in saved_keys(folder))
    merged, _ = loader(str(folder))
    assert not has_lora(merged)
    assert any(not torch.equal(a, b) for a, b in zip(merged.parameters(), initial_model.parameters()))
    with torch.no_grad():
        expected = trained_peft.eval()(input_ids=IDS, attention_mask=MASK).logits
        assert torch.allclose(merged(input_ids=IDS, attention_mask=MASK).logits, expected, atol=1e-5)
        assert not torch.allclose(initial_model(input_ids=IDS, attention_mask=MASK).logits, expected, atol=1e-4)


# --- the adapters module ----------------------------------------------------------------------------------------


def test_lora_config_fills_the_defaults_and_refuses_unknown_keys():
    config = lora_config({"r": 4}, "causal_lm")
    assert (config.r, config.lora_alpha, config.lora_dropout) == (4, DEFAULTS["alpha"], DEFAULTS["dropout"])
    assert config.target_modules is None  # peft's default for the architecture
    config = lora_config({"r": 2, "alpha": 8, "dropout": 0.0, "target_modules": ["c_attn"]}, "sequence_classification")
    assert (config.r, config.lora_alpha, config.task_type) == (2, 8, "SEQ_CLS") and set(config.target_modules) == {
        "c_attn"}
    with pytest.raises(ValueError, match=r"training.lora: unknown keys \['rank'\]"):
        lora_config({"rank": 4}, "causal_lm")
    with pytest.raises(ValueError, match="LoRA task"):
        lora_config({}, "seq2seq")


def test_lora_is_refused_with_fsdp(tiny_lm_dir, monkeypatch):
    model, _ = load_causal_lm(str(tiny_lm_dir))
    peft_model = add_lora(model, LORA)
    result = TrainingResult(SimpleNamespace(unwrap_model=lambda m: m, distributed_type="FSDP"), peft_model, [])
    with pytest.raises(ValueError, match="training.lora .* cannot be combined with FSDP"):
        result.save("unused", None, {})
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(ValueError, match="cannot be combined with FSDP"):
        add_lora(load_causal_lm(str(tiny_lm_dir))[0], LORA)


def test_merge_lora_leaves_a_model_without_adapters_alone(tiny_lm_dir):
    model, _ = load_causal_lm(str(tiny_lm_dir))
    assert merge_lora(model) is model and not has_lora(model)


def test_reference_of_a_lora_policy_is_the_base_model(tiny_lm_dir):
    original, _ = load_causal_lm(str(tiny_lm_dir))
    policy = add_lora(CausalLMWithValueHead(load_causal_lm(str(tiny_lm_dir))[0]), {**LORA, "dropout": 0.0})
    reference = FrozenReference(policy.lm)
    assert reference.parameter_count == 0  # nothing copied: the base weights never train
    with torch.no_grad():
        for name, p in policy.named_parameters():
            if "lora_" in name:
                p.add_(0.5 * torch.randn_like(p))
        expected = original(input_ids=IDS, attention_mask=MASK).logits
        assert not torch.allclose(policy(IDS, MASK)[0], expected, atol=1e-3)
        assert torch.equal(reference.logits(policy, IDS, MASK), expected)
        with adapters_disabled(original):  # a model without adapters: no change
            assert torch.equal(original(input_ids=IDS, attention_mask=MASK).logits, expected)


# --- RRHF -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rrhf_run(tmp_path_factory, tiny_lm_dir, synthetic_frame):
    from rrhf.training.rrhf import train_rrhf

    folder = tmp_path_factory.mktemp("rrhf_lora")
    write_parquet(scored_set(synthetic_frame, 8), folder / "scored.parquet", {"stage": "test"})
    with watched_training() as seen:
        train_rrhf(str(tiny_lm_dir), str(folder / "scored.parquet"), str(folder / "model"),
                   {"training": TRAINING, "max_tokens_per_forward": 1024}, {})
    return folder / "model", seen


def test_rrhf_with_lora_trains_only_the_adapters(rrhf_run, tiny_lm_dir):
    _, seen = rrhf_run
    original, _ = load_causal_lm(str(tiny_lm_dir))
    trainable = [name for name, p in seen["trained"].named_parameters() if p.requires_grad]
    assert trainable == adapter_parameter_names(seen["trained"])
    assert_only_adapters_trained(seen["trained"], original, seen["initial"])


def test_rrhf_with_lora_saves_the_merged_model(rrhf_run, tiny_lm_dir):
    folder, seen = rrhf_run
    assert_merged(folder, seen["trained"], load_causal_lm(str(tiny_lm_dir))[0])
    assert (folder / "metrics.json").exists() and (folder / "train_log.parquet").exists()


# --- reward model -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory, tiny_reward_dir, synthetic_frame):
    from rrhf.training.reward_model import train_reward_model

    folder = tmp_path_factory.mktemp("reward_lora")
    write_parquet(synthetic_frame.head(16), folder / "train.parquet", {"stage": "test"})
    write_parquet(synthetic_frame.iloc[16:24], folder / "test.parquet", {"stage": "test"})
    with watched_training() as seen:
        metrics = train_reward_model(str(tiny_reward_dir), str(folder / "train.parquet"),
                                     str(folder / "test.parquet"), str(folder / "model"),
                                     {"kind": "reward", "dataset": "test", "training": TRAINING}, {})
    return folder / "model", seen, metrics


def test_reward_model_with_lora_trains_the_adapters_and_the_whole_score_head(reward_run, tiny_reward_dir):
    _, seen, metrics = reward_run
    original, _ = load_reward_model(str(tiny_reward_dir))
    trained = seen["trained"]
    assert_only_adapters_trained(trained, original, seen["initial"])
    head = [name for name, p in trained.named_parameters() if p.requires_grad and "lora_" not in name]
    assert head and all(".score.modules_to_save." in name for name in head)
    for name in head:
        assert not torch.equal(dict(trained.named_parameters())[name], seen["initial"][name]), name
    assert metrics["test_pairs"] == 8


def test_reward_model_with_lora_saves_the_merged_model(reward_run, tiny_reward_dir):
    folder, seen, _ = reward_run
    assert_merged(folder, seen["trained"], load_reward_model(str(tiny_reward_dir))[0], load_reward_model)


# --- SFT, pre-training ------------------------------------------------------------------------------------------


def test_sft_with_lora_writes_a_merged_model(tmp_path, tiny_lm_dir, synthetic_frame):
    from rrhf.training.language_model import train_sft

    write_parquet(synthetic_frame.head(16), tmp_path / "train.parquet", {"stage": "test"})
    with watched_training() as seen:
        train_sft(str(tiny_lm_dir), str(tmp_path / "train.parquet"), str(tmp_path / "model"),
                  {"kind": "sft", "dataset": "test", "training": TRAINING}, {})
    original, _ = load_causal_lm(str(tiny_lm_dir))
    assert_only_adapters_trained(seen["trained"], original, seen["initial"])
    assert_merged(tmp_path / "model", seen["trained"], original)


def test_pretraining_refuses_lora(tmp_path, tokenizer_dir):
    from rrhf.training.language_model import pretrain_lm

    with pytest.raises(ValueError, match=r"build\.training\.lora"):
        pretrain_lm(str(tokenizer_dir), str(tmp_path / "missing.parquet"), str(tmp_path / "out"),
                    {"kind": "pretrain", "dataset": "test", "training": TRAINING}, {})
    assert not (tmp_path / "out").exists()


# --- PPO --------------------------------------------------------------------------------------------------------

PPO = {
    "num_rollouts": 8, "chunk_size": 8, "ppo_epochs": 1, "total_steps": 4, "num_layers_unfrozen": 1,
    "gamma": 1.0, "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 1.0,
    "kl": {"controller": "fixed", "init_coef": 0.05}, "scale_reward": "running", "cliprange_reward": 10,
    "delta_reward": False, "generation": {"max_new_tokens": 6, "top_k": 0, "top_p": 1.0, "temperature": 1.0},
}


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, tiny_lm_dir, tiny_reward_dir, synthetic_frame):
    from rrhf.training.ppo import train_ppo

    folder = tmp_path_factory.mktemp("ppo_lora")
    frame = synthetic_frame.head(16).copy()
    frame["prompt"] = ["\n\nHuman: " + " ".join(p.split("Human:")[1].split()[:2]) + "\n\nAssistant:"
                       for p in frame["prompt"]]
    write_parquet(frame, folder / "train.parquet", {"stage": "test"})
    training = {**TRAINING, "max_length": 32, "lr_schedule": "constant"}
    with watched_training() as seen:
        metrics = train_ppo(str(tiny_lm_dir), str(tiny_reward_dir), str(folder / "train.parquet"),
                            str(folder / "model"), {**PPO, "training": training}, {},
                            {"limit": None, "seed": 0, "key": "data.train_prompts"}, {},
                            log_path=str(folder / "run.log"))
    return folder, seen, metrics


def test_ppo_with_lora_trains_adapters_and_value_head_against_the_original_model(ppo_run, tiny_lm_dir):
    folder, seen, metrics = ppo_run
    original, _ = load_causal_lm(str(tiny_lm_dir))
    policy = seen["trained"]
    assert isinstance(policy, CausalLMWithValueHead)
    assert_only_adapters_trained(policy.lm, original, seen["initial"], prefix="lm.")
    for name, p in policy.value_head.named_parameters():
        assert p.requires_grad and not torch.equal(p, seen["initial"]["value_head." + name]), name
    trainable = {name for name, p in policy.named_parameters() if p.requires_grad}
    assert trainable == {"lm." + n for n in adapter_parameter_names(policy.lm)} | {
        "value_head." + n for n, _ in policy.value_head.named_parameters()}
    assert metrics["reference_parameters"] == 0 and metrics["trainable_parameters"] == sum(
        p.numel() for p in policy.parameters() if p.requires_grad)
    policy.eval()
    with torch.no_grad():
        expected = original(input_ids=IDS, attention_mask=MASK).logits
        assert torch.equal(seen["reference"].logits(policy, IDS, MASK), expected)
        assert not torch.allclose(policy(IDS, MASK)[0], expected, atol=1e-4)
    assert "num_layers_unfrozen is not used with training.lora" in (folder / "run.log").read_text()


def test_ppo_with_lora_saves_the_merged_policy_and_its_value_head(ppo_run, tiny_lm_dir):
    from safetensors.torch import load_file

    from rrhf.models.value_head_policy import VALUE_HEAD_FILE

    folder, seen, _ = ppo_run
    policy = seen["trained"]
    assert_merged(folder / "model", policy.lm, load_causal_lm(str(tiny_lm_dir))[0])
    head = load_file(str(folder / "model" / VALUE_HEAD_FILE))
    assert set(head) == {"0.weight", "0.bias", "2.weight", "2.bias"}
    assert torch.equal(head["2.weight"], policy.value_head[2].weight)
    assert len(pd.read_parquet(folder / "model" / "train_log.parquet")) == 2  # iterations


# --- online RRHF ------------------------------------------------------------------------------------------------


def test_online_rrhf_with_lora_keeps_rho_the_original_model(tmp_path, tiny_lm_dir, tiny_reward_dir, synthetic_frame):
    from rrhf.training.online_rrhf import train_online_rrhf

    frame = synthetic_frame.head(8).copy()
    frame["prompt"] = last_turn_prompts(frame)
    write_parquet(frame[["prompt_id", "prompt"]], tmp_path / "train.parquet", {"stage": "test"})
    sampler = {"num_responses": 2, "num_beams": 2, "num_beam_groups": 2, "diversity_penalty": 1.0,
               "max_new_tokens": 4}
    online = {"steps_per_sample": 1, "kl_coef": 0.5, "sampler": "diverse_beam"}
    with watched_training() as seen:
        metrics = train_online_rrhf(str(tiny_lm_dir), str(tiny_reward_dir), str(tmp_path / "train.parquet"),
                                    str(tmp_path / "model"),
                                    {"training": {**TRAINING, "epochs": 1}, "ft_reduction": "sum"}, online,
                                    {"seed": 0, "batch_size": 8, "samplers": {"diverse_beam": sampler}},
                                    {"batch_size": 8, "max_length": 64},
                                    {"limit": None, "seed": 0, "key": "data.train_prompts"}, {})
    assert metrics["rounds"] == 2
    samples = pd.read_parquet(tmp_path / "model" / "online_samples.parquet")
    first = samples[samples["round"] == 0]
    assert first["kl"].abs().max() < 1e-5  # adapters start as a no-op: pi = rho before training
    assert samples[samples["round"] == 1]["kl"].max() > 1e-4  # and rho stays the original model after a step
    original, _ = load_causal_lm(str(tiny_lm_dir))
    assert_only_adapters_trained(seen["trained"], original, seen["initial"])
    assert_merged(tmp_path / "model", seen["trained"], original)
