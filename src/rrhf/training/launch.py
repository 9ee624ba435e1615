"""Run a training stage in this process, or in several under ``accelerate launch``.

With no accelerate config and ``gpu: 1`` (or 0) the rule calls the trainer
directly. With more GPUs, or with an accelerate config (envs/accelerate/: one
GPU, DDP, FSDP full-shard, FSDP with CPU offload), the trainer's keyword
arguments go to a JSON file and ``accelerate launch`` starts one process per GPU
(at least one) running ``python -m rrhf.training.launch TRAINER ARGS.json``.

Either way the job's ``checkpoint`` settings get the job's fingerprint, so the
trainer resumes only from checkpoints of this very job (rrhf.training.checkpoints).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rrhf.training.checkpoints import job_fingerprint

TRAINERS = {
    "pretrain_lm": "rrhf.training.language_model:pretrain_lm",
    "train_sft": "rrhf.training.language_model:train_sft",
    "train_reward_model": "rrhf.training.reward_model:train_reward_model",
    "train_rrhf": "rrhf.training.rrhf:train_rrhf",
    "train_ppo": "rrhf.training.ppo:train_ppo",
    "train_online_rrhf": "rrhf.training.online_rrhf:train_online_rrhf",
}


def trainer_function(name: str):
    """The stage function registered under ``name``, or named as ``module:function`` (a study's trainer, e.g.
    ``rrhf.studies.preference_methods.trainer:train_preference_method``)."""
    if name not in TRAINERS and ":" not in name:
        raise ValueError(f"unknown trainer {name!r}; expected one of {sorted(TRAINERS)} or module:function")
    module, function = TRAINERS.get(name, name).split(":")
    return getattr(importlib.import_module(module), function)


def launch_command(trainer: str, arguments_file: str, num_processes: int,
                   accelerate_config: str | None = None) -> list[str]:
    """The ``accelerate launch`` command line that runs ``trainer`` in ``num_processes`` processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config:
        command += ["--config_file", str(accelerate_config)]
    return command + ["-m", "rrhf.training.launch", trainer, str(arguments_file)]


def needs_launch(num_processes: int, accelerate_config: str | None) -> bool:
    """Whether a trainer runs under ``accelerate launch``: several GPUs, or an accelerate config to apply."""
    return num_processes > 1 or bool(accelerate_config)


def run_trainer(trainer: str, arguments: dict[str, Any], num_processes: int = 1,
                accelerate_config: str | None = None) -> Any:
    """Call ``trainer(**arguments)`` here, or under ``accelerate launch`` when ``num_processes`` > 1 or an
    ``accelerate_config`` is given (e.g. FSDP with CPU offload on one GPU)."""
    function = trainer_function(trainer)
    if arguments.get("checkpoint"):
        arguments = {**arguments, "checkpoint": {**arguments["checkpoint"], "fingerprint": job_fingerprint(arguments)}}
    if not needs_launch(num_processes, accelerate_config):
        return function(**arguments)
    num_processes = max(1, num_processes)
    with tempfile.TemporaryDirectory(prefix="rrhf-launch-") as folder:
        arguments_file = Path(folder) / "arguments.json"
        arguments_file.write_text(json.dumps(arguments))
        command = launch_command(trainer, str(arguments_file), num_processes, accelerate_config)
        completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{trainer} failed under accelerate launch (exit {completed.returncode}): "
                           f"{' '.join(command)}")
    return None


def run_job(job: Any, trainer: str, **arguments: Any) -> Any:
    """Run ``trainer`` for a Snakemake job (a script's ``snakemake`` object) with ``arguments`` and what every
    trainer takes from its job alike: ``output_dir`` (its output ``model``), ``checkpoint`` (config
    ``checkpoints``, resuming only this job's), ``tracking`` (config ``tracking``) and ``log_path`` (its log); in as
    many processes as it has GPUs (resources ``gpu``), under the rule's ``accelerate_config`` param where it has
    one (:func:`run_trainer`)."""
    arguments = {**arguments, "output_dir": job.output.model,
                 "checkpoint": dict(job.config["checkpoints"], job=job.output.model),
                 "tracking": job.config["tracking"], "log_path": job.log[0]}
    return run_trainer(trainer, arguments, num_processes=job.resources.gpu,
                       accelerate_config=job.params.get("accelerate_config"))


def main(argv: list[str]) -> None:
    """Entry point of each launched process: ``python -m rrhf.training.launch TRAINER ARGS.json``."""
    if len(argv) != 2:
        raise SystemExit("usage: python -m rrhf.training.launch TRAINER ARGUMENTS.json")
    trainer, arguments_file = argv
    trainer_function(trainer)(**json.loads(Path(arguments_file).read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
