"""Resume after kill -9: a trainer killed between two checkpoints, or right after one, ends with the same model,
train_log.parquet and metrics as a run that was never interrupted."""

import json
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
from safetensors.torch import load_file
from test_ppo import short_prompts

from rrhf.io import write_parquet
from rrhf.training.launch import run_trainer
from scored_sets import scored_set

pytestmark = pytest.mark.slow  # trainings stopped and resumed

# A child process that runs one trainer through rrhf.training.launch.run_trainer (as the workflow's scripts do) and
# kills itself with SIGKILL at a given optimiser step: right after the checkpoint of that step is in place, or
# after that step's log row (between two checkpoints).
KILLED_TRAINER = """
import json, os, signal, sys
from rrhf.training import checkpoints, loop
from rrhf.training.launch import run_trainer

trainer, arguments, kill = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
if kill and kill["at"] == "checkpoint":
    save = checkpoints.Checkpoints.save
    def save_then_die(self, step, state):
        path = save(self, step, state)
        if step == kill["step"]:
            os.kill(os.getpid(), signal.SIGKILL)
        return path
    checkpoints.Checkpoints.save = save_then_die
elif kill:
    report = loop.Trainer._report
    def report_then_die(self, row):
        report(self, row)
        if len(self.rows) == kill["step"]:
            os.kill(os.getpid(), signal.SIGKILL)
    loop.Trainer._report = report_then_die
run_trainer(trainer, arguments)
"""


def run_child(trainer: str, arguments: dict, kill: dict | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", KILLED_TRAINER, trainer, json.dumps(arguments), json.dumps(kill)],
                          capture_output=True, text=True, env=env, timeout=600)


def assert_same_result(resumed, uninterrupted):
    """Bitwise the same weights, the same log rows and the same metrics."""
    ours, theirs = load_file(resumed / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert ours[name].equal(theirs[name]), name
    pd.testing.assert_frame_equal(pd.read_parquet(resumed / "train_log.parquet"),
                                  pd.read_parquet(uninterrupted / "train_log.parquet"), check_exact=True)
    metrics = [json.loads((folder / "metrics.json").read_text()) for folder in (resumed, uninterrupted)]
    assert metrics[0] == metrics[1]


def kill_then_finish(trainer: str, arguments: dict, kills: list[dict]) -> list[str]:
    """Run the trainer once per kill in a child process that dies by SIGKILL there, then to the end here, all
    with the same arguments; return each run's log."""
    logs = []
    for kill in kills:
        completed = run_child(trainer, arguments, kill)
        assert completed.returncode == -signal.SIGKILL, completed.stderr[-3000:]
        assert not os.path.exists(arguments["output_dir"])  # a killed job leaves no output
        logs.append(open(arguments["log_path"]).read())
    run_trainer(trainer, arguments)
    return logs + [open(arguments["log_path"]).read()]


def checkpoint_settings(root, every_steps: int) -> dict:
    return {"folder": str(root / "checkpoints"), "job": "model", "every_steps": every_steps, "every_minutes": 0,
            "keep": False}


def test_rrhf_killed_between_and_at_checkpoints_ends_as_if_never_interrupted(tmp_path, tiny_lm_dir,
                                                                               synthetic_frame):
    write_parquet(scored_set(synthetic_frame, 8), tmp_path / "scored.parquet", {"stage": "test"})
    arguments = dict(policy=str(tiny_lm_dir), scored=str(tmp_path / "scored.parquet"),
                     rrhf={"training": {"epochs": 3, "learning_rate": 3e-3, "batch_size": 2,
                                        "gradient_accumulation_steps": 2, "warmup_ratio": 0.1, "max_length": 96,
                                        "seed": 0},
                           "max_tokens_per_forward": 512},
                     precision={})
    run_trainer("train_rrhf", {**arguments, "output_dir": str(tmp_path / "uninterrupted")})
    interrupted = {**arguments, "output_dir": str(tmp_path / "resumed"), "log_path": str(tmp_path / "rrhf.log"),
                   "checkpoint": checkpoint_settings(tmp_path, every_steps=2)}
    first, second, third = kill_then_finish("train_rrhf", interrupted, [{"at": "step", "step": 3},
                                                                        {"at": "checkpoint", "step": 4}])

    assert "checkpoint at step 2" in first and "resum" not in first
    assert "resuming from checkpoint" in second and "step 2" in second
    assert "resuming from checkpoint" in third and "rrhf resumes after step 4 of 6" in third
    assert_same_result(tmp_path / "resumed", tmp_path / "uninterrupted")
    assert not (tmp_path / "checkpoints/model").exists()  # removed once the model is in place


def test_ppo_killed_between_and_at_checkpoints_ends_as_if_never_interrupted(tmp_path, tiny_lm_dir, tiny_reward_dir,
                                                                              synthetic_frame):
    frame = synthetic_frame.head(32).copy()
    frame["prompt"] = short_prompts(frame)
    write_parquet(frame, tmp_path / "train.parquet", {"stage": "test"})
    ppo = {"num_rollouts": 8, "chunk_size": 8, "ppo_epochs": 1, "total_steps": 8, "num_layers_unfrozen": None,
           "gamma": 1.0, "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 1.0,
           "kl": {"controller": "adaptive", "init_coef": 0.05, "target": 6, "horizon": 100},
           "scale_reward": "running", "cliprange_reward": 10, "delta_reward": False,
           "generation": {"max_new_tokens": 6, "top_k": 0, "top_p": 1.0, "temperature": 1.0}}
    arguments = dict(policy=str(tiny_lm_dir), reward_model=str(tiny_reward_dir),
                     train_data=str(tmp_path / "train.parquet"),
                     ppo={**ppo, "training": {"learning_rate": 1e-3, "batch_size": 4, "max_length": 64, "seed": 3}},
                     scoring={}, prompts={"limit": 32, "seed": 0, "key": "data.train_prompts"}, precision={})
    run_trainer("train_ppo", {**arguments, "output_dir": str(tmp_path / "uninterrupted")})
    interrupted = {**arguments, "output_dir": str(tmp_path / "resumed"), "log_path": str(tmp_path / "ppo.log"),
                   "checkpoint": checkpoint_settings(tmp_path, every_steps=1)}  # at every iteration's end
    # Two optimiser steps per iteration: step 5 is inside the third iteration, whose rollouts are drawn again.
    first, second = kill_then_finish("train_ppo", interrupted, [{"at": "step", "step": 5}])

    assert "checkpoint at step 4" in first and "resum" not in first
    assert "ppo resumes after step 4 of 8" in second
    assert_same_result(tmp_path / "resumed", tmp_path / "uninterrupted")
    assert not (tmp_path / "checkpoints/model").exists()


@pytest.mark.parametrize("change", ["setting", "input"])
def test_a_checkpoint_of_another_job_is_not_resumed_from(tmp_path, tiny_lm_dir, synthetic_frame, change):
    write_parquet(scored_set(synthetic_frame, 8), tmp_path / "scored.parquet", {"stage": "test"})
    arguments = dict(policy=str(tiny_lm_dir), scored=str(tmp_path / "scored.parquet"), output_dir=str(tmp_path / "m"),
                     rrhf={"training": {"epochs": 2, "batch_size": 4, "max_length": 96, "seed": 0}}, precision={},
                     log_path=str(tmp_path / "rrhf.log"),
                     checkpoint={**checkpoint_settings(tmp_path, every_steps=1), "keep": True})
    run_trainer("train_rrhf", arguments)
    assert sorted(p.name for p in (tmp_path / "checkpoints/model").iterdir()) == ["step-00000004"]  # kept: the last
    if change == "setting":
        arguments["rrhf"] = {"training": {**arguments["rrhf"]["training"], "learning_rate": 1e-4}}
    else:  # the scored set was rebuilt
        write_parquet(scored_set(synthetic_frame, 8), tmp_path / "scored.parquet", {"stage": "test", "again": 1})
    run_trainer("train_rrhf", arguments)
    log = open(arguments["log_path"]).read()
    assert "not resuming from" in log and "different job" in log and "resuming from checkpoint" not in log


def test_a_job_that_never_saves_a_checkpoint_leaves_no_checkpoint_folder(tmp_path, tiny_lm_dir, synthetic_frame):
    write_parquet(scored_set(synthetic_frame, 4), tmp_path / "scored.parquet", {"stage": "test"})
    run_trainer("train_rrhf", dict(policy=str(tiny_lm_dir), scored=str(tmp_path / "scored.parquet"),
                                   output_dir=str(tmp_path / "m"),
                                   rrhf={"training": {"batch_size": 2, "max_length": 96}}, precision={},
                                   checkpoint={**checkpoint_settings(tmp_path, every_steps=0), "every_minutes": 30}))
    assert (tmp_path / "m" / "model.safetensors").exists()
    assert not (tmp_path / "checkpoints").exists()  # the tiny default's jobs leave no empty checkpoints/ tree
