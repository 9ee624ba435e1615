"""Experiment tracking through accelerate's trackers: a trainer's log rows, as train_log.parquet holds them.

When a trainer saves its model (rrhf.training.loop.TrainingResult.save) every row of its training log goes to
the trackers of the config's ``tracking`` block (rrhf.plan.blocks.Tracking): TensorBoard event files in the
model's folder (``tensorboard/<run>/``, offline, on by default), and W&B or MLflow when listed. Each row is one
step: its ``step`` column where the log has one, else its position.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rrhf.plan.blocks import Tracking


def numeric_values(row: dict[str, Any]) -> dict[str, float]:
    """The row's finite numbers (booleans and text left out): what a tracker can plot."""
    return {key: float(value) for key, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def make_trackers(tracking: Tracking, run_name: str, folder: Path) -> list:
    """accelerate's tracker objects for ``tracking.trackers``; TensorBoard writes under ``folder``."""
    trackers = []
    for name in tracking.trackers:
        if name == "tensorboard":
            from accelerate.tracking import TensorBoardTracker

            trackers.append(TensorBoardTracker(run_name, folder))
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


def log_training(rows: list[dict[str, Any]], tracking: Tracking | dict[str, Any] | None, run_name: str,
                 folder: Path, about: dict[str, Any] | None = None) -> int:
    """Log every row of a training log (``step`` from its ``step`` column, else its index) and the run's
    ``about`` (its config, as hyper-parameters where the tracker keeps them) to the trackers; returns the
    number of trackers used. ``tracking`` None or with no trackers logs nothing."""
    if tracking is None:
        return 0
    tracking = Tracking.coerce(tracking)
    trackers = make_trackers(tracking, run_name, Path(folder))
    for tracker in trackers:
        if about and tracker.name != "tensorboard":  # TensorBoard's hparams want flat scalars only
            tracker.store_init_configuration(about)
        for index, row in enumerate(rows):
            step = row.get("step", index)
            tracker.log(numeric_values(row), step=int(step) if isinstance(step, (int, float)) else index)
        tracker.finish()
    return len(trackers)
