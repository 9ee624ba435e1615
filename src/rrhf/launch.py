"""Run a training stage in this process, or in several under ``accelerate launch``.

A rule with ``gpu: 1`` (or 0) calls the trainer directly. With more GPUs, the
trainer's keyword arguments go to a JSON file and ``accelerate launch`` starts
one process per GPU running ``python -m rrhf.launch TRAINER ARGS.json``, with
the given accelerate config (e.g. envs/accelerate_fsdp.yaml for FSDP).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

TRAINERS = {
    "pretrain_lm": "rrhf.train_lm:pretrain_lm",
    "train_sft": "rrhf.train_lm:train_sft",
    "train_reward_model": "rrhf.train_reward:train_reward_model",
    "train_rrhf": "rrhf.train_rrhf:train_rrhf",
}


def trainer_function(name: str):
    """The stage function registered under ``name``."""
    if name not in TRAINERS:
        raise ValueError(f"unknown trainer {name!r}; expected one of {sorted(TRAINERS)}")
    module, function = TRAINERS[name].split(":")
    return getattr(importlib.import_module(module), function)


def launch_command(trainer: str, arguments_file: str, num_processes: int,
                   accelerate_config: str | None = None) -> list[str]:
    """The ``accelerate launch`` command line that runs ``trainer`` in ``num_processes`` processes."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes)]
    if accelerate_config:
        command += ["--config_file", str(accelerate_config)]
    return command + ["-m", "rrhf.launch", trainer, str(arguments_file)]


def run_trainer(trainer: str, arguments: dict[str, Any], num_processes: int = 1,
                accelerate_config: str | None = None) -> Any:
    """Call ``trainer(**arguments)`` here, or under ``accelerate launch`` when ``num_processes`` > 1."""
    function = trainer_function(trainer)
    if num_processes <= 1:
        return function(**arguments)
    with tempfile.TemporaryDirectory(prefix="rrhf-launch-") as folder:
        arguments_file = Path(folder) / "arguments.json"
        arguments_file.write_text(json.dumps(arguments))
        command = launch_command(trainer, str(arguments_file), num_processes, accelerate_config)
        completed = subprocess.run(command, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{trainer} failed under accelerate launch (exit {completed.returncode}): "
                           f"{' '.join(command)}")
    return None


def main(argv: list[str]) -> None:
    """Entry point of each launched process: ``python -m rrhf.launch TRAINER ARGS.json``."""
    if len(argv) != 2:
        raise SystemExit("usage: python -m rrhf.launch TRAINER ARGUMENTS.json")
    trainer, arguments_file = argv
    trainer_function(trainer)(**json.loads(Path(arguments_file).read_text()))


if __name__ == "__main__":
    main(sys.argv[1:])
