"""rrhf.training.tracking: a training log through accelerate's trackers, read back with TensorBoard's reader."""

import math

import pytest

from rrhf.training.tracking import log_training, numeric_values


def read_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = sorted({path.parent for path in folder.rglob("events.out.tfevents.*")})
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_rows_go_to_tensorboard_at_their_steps(tmp_path):
    rows = [{"step": 1, "loss": 2.5, "reward": math.nan, "kind": "x", "clipped": True},
            {"step": 2, "loss": 2.25, "reward": 0.5}, {"step": 5, "loss": 2.0, "reward": 0.75}]
    used = log_training(rows, {"trackers": ["tensorboard"], "project": "p"}, "train_rrhf", tmp_path / "tb")
    assert used == 1
    scalars = read_scalars(tmp_path / "tb")
    assert scalars == {"step": [(1, 1.0), (2, 2.0), (5, 5.0)], "loss": [(1, 2.5), (2, 2.25), (5, 2.0)],
                       "reward": [(2, 0.5), (5, 0.75)]}  # no NaN, text or flag is plotted


def test_rows_without_a_step_column_are_numbered():
    assert numeric_values({"a": 1, "b": True, "c": "x", "d": math.inf, "e": 0.5}) == {"a": 1.0, "e": 0.5}


@pytest.mark.parametrize("tracking", [None, {"trackers": [], "project": "p"}])
def test_no_trackers_log_nothing(tmp_path, tracking):
    assert log_training([{"step": 1, "loss": 1.0}], tracking, "run", tmp_path / "tb") == 0
    assert not (tmp_path / "tb").exists()
