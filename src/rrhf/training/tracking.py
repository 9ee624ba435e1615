"""Experiment tracking through accelerate's trackers: a trainer's log rows, as train_log.parquet holds them, each
sent as it is produced.

A trainer opens its :class:`TrainingTrackers` when it starts (the config's ``tracking`` block,
rrhf.config.blocks.Tracking) and logs each row the moment it has it, so a curve can be watched while a long job
runs: TensorBoard's event files under ``tracking.folder``/<the model's folder> (``tensorboard --logdir
logs/tensorboard``; offline, on by default, flushed at every row), and W&B or MLflow when listed. Each row is one
step: its ``step`` column where the log has one, else its position. When the model is saved the run's settings
go to the trackers as hyper-parameters, the trackers are closed, and the event files are copied into the model's
folder (``tensorboard/``). Only the main process tracks; train_log.parquet stays the record.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from rrhf.config.blocks import Tracking


def numeric_values(row: dict[str, Any]) -> dict[str, float]:
    """The row's finite numbers (booleans and text left out): what a tracker can plot."""
    return {key: float(value) for key, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def live_folder(tracking: Tracking, output_dir: str | Path) -> Path:
    """Where a job's TensorBoard files go while it runs: ``tracking.folder``/``output_dir`` (an absolute
    ``output_dir`` without its root, so that it stays under the folder)."""
    output = Path(output_dir)
    return Path(tracking.folder) / (output.relative_to(output.anchor) if output.is_absolute() else output)


def make_trackers(tracking: Tracking, run_name: str, folder: Path) -> list:
    """accelerate's tracker objects for ``tracking.trackers``, started; TensorBoard writes into ``folder``."""
    trackers = []
    for name in tracking.trackers:
        if name == "tensorboard":
            from accelerate.tracking import TensorBoardTracker

            trackers.append(TensorBoardTracker("", folder))
        elif name == "wandb":
            from accelerate.tracking import WandBTracker

            trackers.append(WandBTracker(tracking.project, name=run_name))
        elif name == "mlflow":
            from accelerate.tracking import MLflowTracker

            trackers.append(MLflowTracker(tracking.project, run_name=run_name))
        else:
            raise ValueError(f"tracking.trackers: {name!r} is not one of tensorboard, wandb, mlflow")
        trackers[-1].start()  # accelerate's trackers open their writer or run here
    return trackers


class TrainingTrackers:
    """The trackers of one training job, open while it trains (none on processes other than the main one, or
    when ``tracking`` is None or lists none).

    ``output_dir`` is the model folder the job will write: it names the run (W&B, MLflow) and the TensorBoard
    folder, :func:`live_folder`, which is emptied first so that a job run again does not mix two runs' curves.
    """

    def __init__(self, tracking: Tracking | dict[str, Any] | None, output_dir: str | Path, main_process: bool = True):
        self.trackers: list = []
        self.folder: Path | None = None
        self.logged = 0
        if tracking is None or not main_process:
            return
        tracking = Tracking.coerce(tracking)
        if not tracking.trackers:
            return
        from accelerate import PartialState

        PartialState()  # accelerate's trackers log through its state (the trainer's, where one runs)
        self.folder = live_folder(tracking, output_dir)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.trackers = make_trackers(tracking, str(output_dir), self.folder)

    def log(self, row: dict[str, Any]) -> None:
        """Send one log row (its finite numbers) at its ``step`` (else its position among the rows logged)."""
        step = row.get("step", self.logged)
        step = int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) else self.logged
        values = numeric_values(row)
        for tracker in self.trackers:
            tracker.log(values, step=step)
        self.logged += 1

    def finish(self, about: dict[str, Any] | None = None, copy_to: str | Path | None = None) -> int:
        """Give the trackers the run's settings (``about``, as hyper-parameters where the tracker keeps them), close
        them, and copy the TensorBoard files into ``copy_to`` (the model folder's ``tensorboard/``). Returns the
        number of trackers closed."""
        for tracker in self.trackers:
            if about and tracker.name != "tensorboard":  # TensorBoard's hparams want flat scalars only
                tracker.store_init_configuration(about)
            tracker.finish()
        if copy_to is not None and self.folder is not None and any(self.folder.iterdir()):
            shutil.copytree(self.folder, copy_to, dirs_exist_ok=True)
        closed, self.trackers = len(self.trackers), []
        return closed
