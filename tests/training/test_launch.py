"""Training in several processes: the same trainer under torchrun (2 CPU processes, gloo), as on GPUs."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
from transformers import AutoModelForCausalLM

from rrhf.io import write_parquet
from rrhf.training.launch import launch_command, run_trainer, trainer_function
from scored_sets import scored_set

TRAINING = {"epochs": 2, "learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.1, "max_length": 128, "seed": 0}


def test_launch_command():
    command = launch_command("train_rrhf", "/tmp/args.json", 8, "envs/accelerate/fsdp_full_shard.yaml")
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[3:7] == ["--num_processes", "8", "--config_file", "envs/accelerate/fsdp_full_shard.yaml"]
    assert command[-4:] == ["-m", "rrhf.training.launch", "train_rrhf", "/tmp/args.json"]
    assert "--config_file" not in launch_command("train_sft", "a.json", 2)


def test_unknown_trainer_is_named():
    with pytest.raises(ValueError, match="evaluate_policy"):
        trainer_function("evaluate_policy")
    with pytest.raises(ValueError, match="evaluate_policy"):
        run_trainer("evaluate_policy", {})


def test_every_trainer_runs_through_run_trainer():
    """All six trainers get the job's checkpoint fingerprint there (rrhf.training.checkpoints)."""
    for name in ("pretrain_lm", "train_sft", "train_reward_model", "train_rrhf", "train_ppo", "train_online_rrhf"):
        assert callable(trainer_function(name))


@pytest.mark.slow  # two processes under accelerate launch
def test_rrhf_in_two_processes_splits_the_batches(tmp_path, tiny_lm_dir, synthetic_frame):
    scored = scored_set(synthetic_frame, 24)  # 24 queries / batch 4 = 6 batches per epoch, 3 per process
    write_parquet(scored, tmp_path / "scored.parquet", {"stage": "test"})
    arguments = {"policy": str(tiny_lm_dir), "scored": str(tmp_path / "scored.parquet"),
                 "output_dir": str(tmp_path / "model"),
                 "rrhf": {"training": TRAINING, "max_tokens_per_forward": 1024}, "precision": {},
                 "log_path": str(tmp_path / "train.log")}
    (tmp_path / "arguments.json").write_text(json.dumps(arguments))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                             "--master_port", "29561", "-m", "rrhf.training.launch", "train_rrhf",
                             str(tmp_path / "arguments.json")], capture_output=True, text=True, env=env,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-4000:]
    log = pd.read_parquet(tmp_path / "model" / "train_log.parquet")
    assert len(log) == 2 * 3  # each process took half of each epoch's batches
    assert log["loss"].tail(2).mean() < log["loss"].head(2).mean()
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "model").config.n_layer == 1
    text = (tmp_path / "train.log").read_text()
    assert "RRHF done" in text and "[rank 1]" not in text  # one log file, written by the first process
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".model")]  # no temporary folder left
