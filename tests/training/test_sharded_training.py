"""Training sharded with FSDP2, as config/paper.yaml trains on 8 GPUs, run for real in two CPU processes.

``accelerate launch --config_file envs/accelerate/fsdp_full_shard.yaml`` starts the processes as it would on a GPU
node, and tests/fsdp_on_cpu.py turns accelerate's FSDP on in them (accelerate itself does only on GPUs): prepare
shards the model with torch's ``fully_shard`` over gloo, only the first process reads the weights
(``fsdp_cpu_ram_efficient_loading``), every forward and backward pass gathers and scatters shards across the two
processes, and the saved model is gathered from both. What breaks here breaks on GPUs.
"""

import json
import os
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import last_turn_prompts, save_new_lm
from transformers import AutoModelForCausalLM

from rrhf.io import write_parquet
from rrhf.training.launch import launch_command
from scored_sets import scored_set

pytestmark = pytest.mark.slow  # several processes under accelerate launch

REPO = Path(__file__).resolve().parents[2]
FSDP = REPO / "envs" / "accelerate" / "fsdp_full_shard.yaml"
DDP = REPO / "envs" / "accelerate" / "ddp.yaml"
TRAINING = {"epochs": 2, "learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.0, "max_length": 96, "seed": 0}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_sharded(trainer: str, arguments: dict, folder: Path, *options: str,
                   config: Path = FSDP) -> subprocess.CompletedProcess:
    """``trainer`` under accelerate launch with an accelerate config (the FSDP one by default), in two CPU processes
    (``options``: more launch flags, e.g. ``--mixed_precision no``); each process records what it loaded into
    ``folder``."""
    (folder / "arguments.json").write_text(json.dumps(arguments))
    command = launch_command(trainer, str(folder / "arguments.json"), 2, str(config))
    command[command.index("rrhf.training.launch")] = "fsdp_on_cpu"
    command[3:3] = ["--main_process_port", str(free_port()), *options]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1", "RRHF_TEST_RECORD_LOADS": str(folder),
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


def loaded(folder: Path) -> dict[int, list[list[str]]]:
    """Rank -> the devices of each model it built to train."""
    return {int(path.stem.removeprefix("loaded_rank")): json.loads(path.read_text())
            for path in folder.glob("loaded_rank*.json")}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory, tokenizer_dir):
    """A two-layer LLaMA-style policy with tied embeddings (as the tiny default's)."""
    return save_new_lm(tmp_path_factory.mktemp("sharded_policy"), tokenizer_dir,
                       {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 2})


def test_rrhf_trains_sharded_with_the_reward_curve_and_one_copy_of_the_weights_loaded(tmp_path, policy_dir,
                                                                                      tiny_reward_dir,
                                                                                      synthetic_frame):
    """The paper config's train_rrhf: model, optimiser and schedule prepared together, each process's batches in
    one forward pass, Figure 3's reward measured across both processes, weights read by the first only."""
    write_parquet(scored_set(synthetic_frame, 24), tmp_path / "scored.parquet", {"stage": "test"})
    every = {"every_steps": 2, "prompts": 3, "max_new_tokens": 6}
    launch_sharded("train_rrhf", {
        "policy": str(policy_dir), "scored": str(tmp_path / "scored.parquet"), "output_dir": str(tmp_path / "model"),
        "rrhf": {"training": TRAINING, "max_tokens_per_forward": 256, "reward_during_training": every},
        "precision": {}, "reward_model": str(tiny_reward_dir), "scoring": {"batch_size": 4, "max_length": 128},
        "log_path": str(tmp_path / "train.log")}, tmp_path)
    log = pd.read_parquet(tmp_path / "model" / "train_log.parquet")
    assert len(log) == 2 * 3  # 24 queries in batches of 4 over 2 processes: 3 steps an epoch
    measured = log.dropna(subset=["reward"])
    assert list(measured["step"]) == [2, 4, 6]  # every 2 steps and at the last, across both processes
    assert measured["reward"].notna().all() and log.loc[log["step"] % 2 == 1, "reward"].isna().all()
    assert loaded(tmp_path) == {0: [["cpu"]], 1: [["meta"]]}  # only the first process read the weights
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    initial = AutoModelForCausalLM.from_pretrained(policy_dir)
    assert saved.lm_head.weight is saved.model.embed_tokens.weight  # still tied, as it was loaded
    assert not torch.allclose(saved.model.layers[1].mlp.up_proj.weight, initial.model.layers[1].mlp.up_proj.weight)
    assert "FSDP" not in json.loads((tmp_path / "model" / "config.json").read_text())["architectures"][0]


def test_reward_model_trains_sharded_and_scores_its_test_pairs(tmp_path, policy_dir, synthetic_frame):
    """train_reward_model scores the held-out pairs with the sharded model after training, in every process."""
    pairs = synthetic_frame.head(32)
    write_parquet(pairs.iloc[:24], tmp_path / "train.parquet", {"stage": "test"})
    write_parquet(pairs.iloc[24:], tmp_path / "test.parquet", {"stage": "test"})
    launch_sharded("train_reward_model", {
        "init_model": str(policy_dir), "train_data": str(tmp_path / "train.parquet"),
        "test_data": str(tmp_path / "test.parquet"), "output_dir": str(tmp_path / "model"),
        "build": {"kind": "reward", "dataset": "test", "training": TRAINING}, "precision": {},
        "log_path": str(tmp_path / "train.log")}, tmp_path)
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["test_pairs"] == 8 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert loaded(tmp_path) == {0: [["cpu"]], 1: [["meta"]]}
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").config.num_labels == 1


@pytest.mark.parametrize("layout", ["fsdp", "ddp"])
def test_online_rrhf_with_kl_trains_in_two_processes_and_samples_as_one_process_does(tmp_path, policy_dir,
                                                                                     tiny_reward_dir,
                                                                                     synthetic_frame, layout):
    """OP-2+KL on 8 GPUs: each process samples its share of a round (under FSDP with a copy gathered from the
    shards) and measures KL against rho; the first round's samples are a one-process run's, reply for reply."""
    from rrhf.training.online_rrhf import train_online_rrhf

    frame = synthetic_frame.head(16).copy()
    frame["prompt"] = last_turn_prompts(frame)
    write_parquet(frame[["prompt_id", "prompt"]], tmp_path / "train.parquet", {"stage": "test"})
    sampler = {"num_responses": 2, "num_beams": 2, "num_beam_groups": 2, "diversity_penalty": 1.0,
               "max_new_tokens": 6}
    arguments = {"policy": str(policy_dir), "reward_model": str(tiny_reward_dir),
                 "train_data": str(tmp_path / "train.parquet"),
                 "rrhf": {"training": {**TRAINING, "epochs": 1, "batch_size": 2}},
                 "online": {"steps_per_sample": 2, "kl_coef": 0.5, "sampler": "diverse_beam"},
                 "sampling": {"seed": 0, "batch_size": 2, "samplers": {"diverse_beam": sampler}},
                 "scoring": {"batch_size": 8, "max_length": 128},
                 "prompts": {"limit": None, "seed": 0, "key": "data.train_prompts"}, "precision": {}}
    launch_sharded("train_online_rrhf", {**arguments, "output_dir": str(tmp_path / "sharded")}, tmp_path,
                   "--mixed_precision", "no", config=FSDP if layout == "fsdp" else DDP)
    # One process sampling every 4 steps: its first round is the same 8 queries in the same batches.
    train_online_rrhf(**{**arguments, "online": {**arguments["online"], "steps_per_sample": 4}},
                      output_dir=str(tmp_path / "alone"))
    sharded = pd.read_parquet(tmp_path / "sharded" / "online_samples.parquet")
    alone = pd.read_parquet(tmp_path / "alone" / "online_samples.parquet")
    # 16 queries, 2 per process-step: 2 rounds of 2 steps x 2 processes x 2 queries, 2 replies each
    assert sorted(sharded["round"].unique()) == [0, 1] and len(sharded) == 16 * 2
    first = [frame[frame["round"] == 0].reset_index(drop=True) for frame in (sharded, alone)]
    columns = ["prompt_id", "response_index", "response"]
    pd.testing.assert_frame_equal(first[0][columns], first[1][columns])
    assert first[0]["reward"].to_numpy() == pytest.approx(first[1]["reward"].to_numpy(), abs=1e-5)
    assert (first[0]["kl"].abs() < 1e-5).all()  # rho is the policy before training
    assert (sharded.loc[sharded["round"] == 1, "kl"] > 0).all()  # and the trained policy has moved from it
    # FSDP: only the first process read the weights; DDP: each holds its own copy
    assert loaded(tmp_path) == {0: [["cpu"]], 1: [["meta" if layout == "fsdp" else "cpu"]]}
    log = pd.read_parquet(tmp_path / "sharded" / "train_log.parquet")
    assert list(log["round"]) == [0, 0, 1, 1]
