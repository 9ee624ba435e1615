"""Periodic checkpoints that let an interrupted training job resume where it stopped.

A job killed by a SLURM time limit, pre-emption, a node failure or ``kill -9``
loses its output folder (Snakemake removes the outputs of a failed job), but not
its checkpoints: they live in their own folder, ``checkpoints.folder`` +
the output's path (``checkpoints/results/models/instruct/DP/``), outside every
rule's output. When the job starts again (the same command, ``--rerun-incomplete``,
or SLURM requeueing it) the trainer loads the latest complete checkpoint and goes
on from there; after the job succeeds the folder is removed unless
``checkpoints.keep`` is set.

One checkpoint is a folder ``step-00000040/`` holding what ``accelerate``'s
``save_state`` writes (model, optimiser, learning-rate schedule, the RNG states
of every process, the gradient-accumulation counter; FSDP-sharded where the
model is) plus ``loop_state.json``: the log rows so far, the position in the
data order, and what the trainer's own loop needs (PPO's KL coefficient and
reward statistics, the number of prompts drawn). It is written aside as
``.step-00000040.partial-*`` and renamed into place, so a checkpoint folder is
complete or absent; older checkpoints are removed after a newer one is in place.

A checkpoint records a fingerprint of the job (its arguments and the size and
modification time of its input files). One made by a different job, e.g. before
the learning rate was changed, is never resumed from: it is removed, and the
log says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from accelerate import Accelerator

from rrhf.config import blocks
from rrhf.io import naming_damage, remove_partials

log = logging.getLogger("rrhf")
STEP_FOLDER = re.compile(r"step-(\d{8})")
STATE_FILE = "loop_state.json"


def job_fingerprint(arguments: dict[str, Any], ignore: tuple[str, ...] = ("log_path", "checkpoint", "tracking")) -> str:
    """sha256 of a stage's keyword arguments and of the size and mtime of every file under the paths among
    them, so a changed setting or a rebuilt input gives another fingerprint."""
    digest = hashlib.sha256()
    kept = {key: value for key, value in arguments.items() if key not in ignore}
    digest.update(json.dumps(kept, sort_keys=True, default=str).encode())
    for value in _strings(kept):
        path = Path(value)
        if not path.exists() or value == arguments.get("output_dir"):
            continue
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            stat = file.stat()
            digest.update(f"{file}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _strings(value: Any) -> list[str]:
    """Every string inside nested dicts and lists."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [s for item in value for s in _strings(item)]
    return []


def frame_to_json(frame: pd.DataFrame) -> dict[str, Any]:
    """A data frame as JSON-ready lists plus its dtypes, for a loop state (floats round-trip exactly)."""
    return {"dtypes": {column: str(dtype) for column, dtype in frame.dtypes.items()},
            "columns": {column: frame[column].tolist() for column in frame.columns}}


def frame_from_json(document: dict[str, Any]) -> pd.DataFrame:
    """The data frame :func:`frame_to_json` saved, with its column order and dtypes."""
    return pd.DataFrame(document["columns"]).astype(document["dtypes"])


@dataclass
class CheckpointSettings:
    """The ``checkpoints:`` config block (rrhf.config.blocks.Checkpoints) for one job, with the job's folder under
    it and its fingerprint: where, how often, whether to keep them afterwards."""

    folder: str  # the config's checkpoints.folder: every job's checkpoints are under it
    job: str  # this job's folder under it: the output's path (results/models/instruct/DP)
    every_steps: int  # 0: not by steps
    every_minutes: float  # 0: not by time
    keep: bool
    fingerprint: str = ""  # of the job (job_fingerprint); "" before the launcher has added it

    @classmethod
    def from_config(cls, values: dict[str, Any] | None) -> "CheckpointSettings | None":
        """The settings of a job from ``checkpoints`` (keys not given take the schema's defaults) plus ``job``
        and ``fingerprint``; None when ``values`` is None or names no folder (checkpoints off)."""
        if not values:
            return None
        values = dict(values)
        job, fingerprint = values.pop("job", None), values.pop("fingerprint", "")
        block = blocks.Checkpoints.coerce(values)
        if not block.folder:
            return None
        if not job:
            raise ValueError("checkpoints: a job's settings need `job`, its folder under checkpoints.folder")
        return cls(block.folder, job, block.every_steps, block.every_minutes, block.keep, fingerprint)


class Checkpoints:
    """The checkpoints of one training job in ``settings.folder``.

    Every process of a launched run calls :meth:`due`, :meth:`save` and
    :meth:`load` together (they synchronise); only the main process writes
    ``loop_state.json`` and renames folders.
    """

    def __init__(self, settings: CheckpointSettings, accelerator: Accelerator):
        self.settings, self.accelerator = settings, accelerator
        self.folder = Path(settings.folder) / settings.job  # made at the first save: a short job leaves none
        self.last_step = 0
        self.last_time = time.monotonic()
        if accelerator.is_main_process:
            for stale in remove_partials(self.folder, r"\.step-\d{8}\.partial-.*"):
                log.info("removed a half-written checkpoint from an earlier run: %s", stale)
        accelerator.wait_for_everyone()

    def complete(self) -> list[Path]:
        """Complete checkpoint folders, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if STEP_FOLDER.fullmatch(p.name) and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: p.name)

    def due(self, step: int) -> bool:
        """Whether to save at optimiser step ``step``: ``every_steps`` steps or ``every_minutes`` minutes since
        the last save (or the start). When any process says so, all save together."""
        settings = self.settings
        by_steps = settings.every_steps > 0 and step - self.last_step >= settings.every_steps
        by_time = settings.every_minutes > 0 and time.monotonic() - self.last_time >= 60 * settings.every_minutes
        decision = torch.tensor([float(by_steps or by_time)], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:  # clocks differ: save when any process says so, all together
            decision = self.accelerator.reduce(decision, reduction="sum")
        return step > self.last_step and bool(decision.item())

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write checkpoint ``step`` (accelerate state + ``state`` as JSON) atomically; remove older ones."""
        accelerator = self.accelerator
        final = self.folder / f"step-{step:08d}"
        partial = self.folder / f".{final.name}.partial-{os.getpid()}"
        if accelerator.is_main_process:
            shutil.rmtree(partial, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(partial), safe_serialization=False)
        if accelerator.is_main_process:
            document = {"step": step, "fingerprint": self.settings.fingerprint, **state}
            (partial / STATE_FILE).write_text(json.dumps(document, allow_nan=True))
            if final.exists():
                shutil.rmtree(final)
            os.replace(partial, final)
            for older in self.complete():
                if older != final:
                    shutil.rmtree(older, ignore_errors=True)
            log.info("checkpoint at step %d: %s", step, final)
        accelerator.wait_for_everyone()
        self.last_step, self.last_time = step, time.monotonic()
        return final

    def load(self) -> dict[str, Any] | None:
        """Restore the latest complete checkpoint of this job into the prepared model, optimiser and scheduler
        (and the RNG states); return its state (``step``, ``rows``, the loop's own keys), or None.

        Checkpoints with another fingerprint are removed, not loaded."""
        for path in reversed(self.complete()):
            try:
                state = json.loads((path / STATE_FILE).read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                raise ValueError(f"{path / STATE_FILE}: the checkpoint's loop state is damaged ({error}); remove "
                                 f"{path} to start this job afresh") from error
            if state.get("fingerprint") != self.settings.fingerprint:
                log.warning("not resuming from %s: it was made by a different job (changed settings or inputs); "
                            "removing it", path)
                self.accelerator.wait_for_everyone()
                if self.accelerator.is_main_process:
                    shutil.rmtree(path, ignore_errors=True)
                continue
            with naming_damage(str(path), f"the checkpoint (remove {path} to start this job afresh)"):
                self.accelerator.load_state(str(path))
            self.last_step, self.last_time = state["step"], time.monotonic()
            log.info("resuming from checkpoint %s: step %d", path, state["step"])
            return state
        return None

    def finish(self) -> None:
        """After the job's output is in place: remove its checkpoints unless ``keep`` is set."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process and not self.settings.keep:
            shutil.rmtree(self.folder, ignore_errors=True)  # (not its parents: other jobs may be creating theirs)
