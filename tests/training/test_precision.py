"""Number formats and memory savers: the dtype models load in, bf16 mixed precision, gradient checkpointing,
and the shipped accelerate configs."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import torch
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.state import AcceleratorState

from rrhf.config.blocks import Precision
from rrhf.io import write_parquet
from rrhf.models.loading import load_causal_lm, load_reward_model, resolve_dtype
from rrhf.training.launch import needs_launch
from rrhf.training.loop import enable_gradient_checkpointing, resolve_mixed_precision
from rrhf.training.rrhf import train_rrhf
from scored_sets import scored_set

ACCELERATE_CONFIGS = Path(__file__).resolve().parents[2] / "envs" / "accelerate"


def test_auto_dtype_is_bfloat16_on_cuda_and_float32_on_the_cpu(monkeypatch):
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16 and resolve_dtype(torch.float16) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)  # e.g. a V100
    assert resolve_dtype("auto", "cuda") == torch.float32
    with pytest.raises(ValueError, match="precision.dtype"):
        resolve_dtype("fp8")


def test_models_load_in_the_dtype_asked_for(tiny_lm_dir, tiny_reward_dir):
    lm, _ = load_causal_lm(str(tiny_lm_dir), "cpu", "bfloat16")
    reward, _ = load_reward_model(str(tiny_reward_dir), "cpu", "bfloat16")
    assert {p.dtype for p in lm.parameters()} == {p.dtype for p in reward.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in load_causal_lm(str(tiny_lm_dir), "cpu", "auto")[0].parameters()} == {torch.float32}


def test_mixed_precision_auto_is_bf16_on_cuda_only(monkeypatch):
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    assert resolve_mixed_precision("auto") == ("bf16" if torch.cuda.is_available() else "no")
    assert resolve_mixed_precision("bf16") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_mixed_precision("auto") == "bf16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # under accelerate launch its config decides
    assert resolve_mixed_precision("auto") is None


def lm_loss_and_gradients(model, input_ids):
    model.train()
    model.zero_grad()
    torch.manual_seed(0)  # the same dropout masks (checkpointing replays the RNG state when it recomputes)
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(tiny_lm_dir):
    model, _ = load_causal_lm(str(tiny_lm_dir))
    checkpointed = copy.deepcopy(model)
    assert enable_gradient_checkpointing(checkpointed) >= 1 and checkpointed.is_activation_checkpointing
    assert not model.is_activation_checkpointing
    input_ids = torch.randint(0, model.config.vocab_size, (3, 20), generator=torch.Generator().manual_seed(0))
    loss, gradients = lm_loss_and_gradients(model, input_ids)
    loss_checkpointed, gradients_checkpointed = lm_loss_and_gradients(checkpointed, input_ids)
    assert torch.allclose(loss, loss_checkpointed)
    for name, gradient in gradients.items():
        assert torch.allclose(gradient, gradients_checkpointed[name], atol=1e-6), name


def test_gradient_checkpointing_needs_a_transformers_model():
    assert enable_gradient_checkpointing(torch.nn.Linear(2, 2)) == 0


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one mixed-precision setting per process (a job trains once); tests change it."""
    AcceleratorState._reset_state()
    yield
    AcceleratorState._reset_state()


@pytest.mark.parametrize("options", [{"mixed_precision": "bf16"}, {"gradient_checkpointing": True}])
def test_rrhf_trains_with_each_option(tmp_path, tiny_lm_dir, synthetic_frame, options, fresh_accelerator_state):
    # bf16 autocast runs on the CPU too: the weights stay float32 and the loss falls; checkpointing trains as is.
    write_parquet(scored_set(synthetic_frame, 16), tmp_path / "scored.parquet", {"stage": "test"})
    training = {"epochs": 2, "learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0, "max_length": 128,
                "seed": 0}
    assert Precision.coerce(options).__dict__.items() >= options.items()
    train_rrhf(str(tiny_lm_dir), str(tmp_path / "scored.parquet"), str(tmp_path / "model"),
               {"training": training, "max_tokens_per_forward": 1024}, options)
    log = pd.read_parquet(tmp_path / "model" / "train_log.parquet")
    assert log["loss"].notna().all() and log["loss"].tail(2).mean() < log["loss"].head(2).mean()
    trained, _ = load_causal_lm(str(tmp_path / "model"))
    assert {p.dtype for p in trained.parameters()} == {torch.float32}


@pytest.mark.parametrize("name, distributed, offload", [
    ("single_gpu.yaml", "NO", None), ("ddp.yaml", "MULTI_GPU", None),
    ("fsdp_full_shard.yaml", "FSDP", False), ("fsdp_cpu_offload.yaml", "FSDP", True)])
def test_shipped_accelerate_configs_load(name, distributed, offload):
    config = load_config_from_file(str(ACCELERATE_CONFIGS / name))
    assert str(config.distributed_type).split(".")[-1] == distributed
    assert config.mixed_precision == "bf16"
    if offload is not None:
        assert config.fsdp_config["fsdp_offload_params"] is offload
        assert config.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"


def test_an_accelerate_config_means_accelerate_launch_even_on_one_gpu():
    assert not needs_launch(1, None) and not needs_launch(0, None)
    assert needs_launch(8, None) and needs_launch(1, "envs/accelerate/fsdp_cpu_offload.yaml")


class Generated(Exception):
    """Raised after a trainer's first generation, which is all the next tests need."""


def record_generation_dtypes(monkeypatch, module, name: str, dtypes: list):
    """Replace ``module.name`` (a function generating with a causal LM, its first argument) by one that records the
    dtype of every output of the LM's head while it runs, then stops the trainer."""
    generate = getattr(module, name)

    def recorded(lm, *args, **kwargs):
        head = lm.get_output_embeddings()
        handle = head.register_forward_hook(lambda _module, _inputs, output: dtypes.append(output.dtype))
        try:
            generate(lm, *args, **kwargs)
        finally:
            handle.remove()
        raise Generated

    monkeypatch.setattr(module, name, recorded)


def test_ppo_rollouts_generate_in_the_training_precision(tmp_path, tiny_lm_dir, tiny_reward_dir, synthetic_frame,
                                                         fresh_accelerator_state, monkeypatch):
    """Under bf16 mixed precision the rollouts are sampled (and their log-probabilities taken) in bf16, as the
    updates compute, not in float32 beside them."""
    import rrhf.training.ppo

    dtypes = []
    record_generation_dtypes(monkeypatch, rrhf.training.ppo, "sample_actions", dtypes)
    write_parquet(synthetic_frame.head(8), tmp_path / "train.parquet", {"stage": "test"})
    ppo = {"num_rollouts": 4, "chunk_size": 4, "total_steps": 1,
           "generation": {"max_new_tokens": 4, "top_k": 0, "top_p": 1.0, "temperature": 1.0},
           "training": {"batch_size": 2, "max_length": 96, "learning_rate": 1e-4, "seed": 0}}
    with pytest.raises(Generated):
        rrhf.training.ppo.train_ppo(str(tiny_lm_dir), str(tiny_reward_dir), str(tmp_path / "train.parquet"),
                                    str(tmp_path / "ppo"), ppo, {}, {"limit": 8, "seed": 0, "key": "k"},
                                    {"mixed_precision": "bf16"})
    assert dtypes and set(dtypes) == {torch.bfloat16}


def test_online_rrhf_samples_in_the_training_precision(tmp_path, tiny_lm_dir, tiny_reward_dir, synthetic_frame,
                                                       fresh_accelerator_state, monkeypatch):
    import rrhf.training.online_rrhf

    dtypes = []
    record_generation_dtypes(monkeypatch, rrhf.training.online_rrhf, "generate_responses", dtypes)
    write_parquet(synthetic_frame.head(8), tmp_path / "train.parquet", {"stage": "test"})
    sampling = {"seed": 0, "batch_size": 4, "samplers": {"top_p": {"num_responses": 2, "max_new_tokens": 4}}}
    with pytest.raises(Generated):
        rrhf.training.online_rrhf.train_online_rrhf(
            str(tiny_lm_dir), str(tiny_reward_dir), str(tmp_path / "train.parquet"), str(tmp_path / "online"),
            {"training": {"batch_size": 2, "max_length": 96, "seed": 0}},
            {"steps_per_sample": 1, "kl_coef": 0.1, "sampler": "top_p"}, sampling, {},
            {"limit": 8, "seed": 0, "key": "k"}, {"mixed_precision": "bf16"})
    assert dtypes and set(dtypes) == {torch.bfloat16}


def test_the_reward_monitor_decodes_in_the_training_precision(tmp_path, tiny_lm_dir, tiny_reward_dir,
                                                              synthetic_frame, fresh_accelerator_state, monkeypatch):
    import rrhf.training.reward_monitor

    dtypes = []
    record_generation_dtypes(monkeypatch, rrhf.training.reward_monitor, "generate_responses", dtypes)
    write_parquet(scored_set(synthetic_frame, 8), tmp_path / "scored.parquet", {"stage": "test"})
    rrhf_block = {"training": {"batch_size": 4, "max_length": 96, "seed": 0},
                  "reward_during_training": {"every_steps": 1, "prompts": 2, "max_new_tokens": 4}}
    with pytest.raises(Generated):
        train_rrhf(str(tiny_lm_dir), str(tmp_path / "scored.parquet"), str(tmp_path / "model"), rrhf_block,
                   {"mixed_precision": "bf16"}, reward_model=str(tiny_reward_dir), scoring={})
    assert dtypes and set(dtypes) == {torch.bfloat16}
