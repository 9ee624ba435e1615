"""rrhf.training.tracking: each training row reaches the trackers as it is produced (read back with TensorBoard's
own reader while the job runs and after it stopped part way), and the saved model folder holds the events."""

import math

import pytest
import torch
from conftest import save_new_lm

from rrhf.config.blocks import Tracking
from rrhf.models.loading import load_causal_lm_for_training
from rrhf.training.language_model import collate_lm, lm_examples, lm_loss
from rrhf.training.loop import train_model
from rrhf.training.tracking import TrainingTrackers, live_folder, numeric_values

TRAINING = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 2, "warmup_ratio": 0.0, "max_length": 64, "seed": 0}


def read_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = sorted({path.parent for path in folder.rglob("events.out.tfevents.*")})
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tracking(tmp_path, trackers=("tensorboard",)):
    return {"trackers": list(trackers), "project": "p", "folder": str(tmp_path / "live")}


def test_rows_go_to_tensorboard_at_their_steps(tmp_path):
    rows = [{"step": 1, "loss": 2.5, "reward": math.nan, "kind": "x", "clipped": True},
            {"step": 2, "loss": 2.25, "reward": 0.5}, {"step": 5, "loss": 2.0, "reward": 0.75}]
    trackers = TrainingTrackers(tracking(tmp_path), "results/models/x")
    for row in rows:
        trackers.log(row)
    assert trackers.finish({"stage": "train_rrhf"}, tmp_path / "model" / "tensorboard") == 1
    expected = {"step": [(1, 1.0), (2, 2.0), (5, 5.0)], "loss": [(1, 2.5), (2, 2.25), (5, 2.0)],
                "reward": [(2, 0.5), (5, 0.75)]}  # no NaN, text or flag is plotted
    assert read_scalars(tmp_path / "live" / "results/models/x") == expected
    assert read_scalars(tmp_path / "model" / "tensorboard") == expected  # the model folder's copy


def test_rows_without_a_step_column_are_numbered():
    assert numeric_values({"a": 1, "b": True, "c": "x", "d": math.inf, "e": 0.5}) == {"a": 1.0, "e": 0.5}


@pytest.mark.parametrize("settings", [None, {"trackers": [], "project": "p"}])
def test_no_trackers_log_nothing(tmp_path, settings):
    trackers = TrainingTrackers(settings, tmp_path / "model")
    trackers.log({"step": 1, "loss": 1.0})
    assert trackers.finish({}, tmp_path / "copy") == 0 and not (tmp_path / "copy").exists()


def test_only_the_main_process_tracks(tmp_path):
    trackers = TrainingTrackers(tracking(tmp_path), "results/models/x", main_process=False)
    trackers.log({"step": 1, "loss": 1.0})
    assert trackers.finish() == 0 and not (tmp_path / "live").exists()


def test_an_absolute_model_folder_stays_under_the_tracking_folder(tmp_path):
    block = Tracking.coerce(tracking(tmp_path))
    assert live_folder(block, "/scratch/run/results/models/x") == tmp_path / "live" / "scratch/run/results/models/x"
    assert live_folder(block, "results/models/x") == tmp_path / "live" / "results/models/x"


def test_a_job_run_again_starts_its_curves_afresh(tmp_path):
    first = TrainingTrackers(tracking(tmp_path), "results/models/x")
    first.log({"step": 1, "loss": 9.0})
    first.finish()
    second = TrainingTrackers(tracking(tmp_path), "results/models/x")
    second.log({"step": 1, "loss": 1.0})
    assert read_scalars(tmp_path / "live" / "results/models/x") == {"step": [(1, 1.0)], "loss": [(1, 1.0)]}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, tokenizer_dir):
    return save_new_lm(tmp_path_factory.mktemp("llama"), tokenizer_dir,
                       {"family": "llama", "n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 128})


class Stopped(Exception):
    """The job is stopped part way (a time limit, a pre-emption, a crash)."""


def test_rows_are_in_tensorboard_while_the_job_runs_and_after_it_stopped_part_way(tmp_path, llama_dir,
                                                                                   synthetic_frame):
    """Read with TensorBoard's reader from inside the job, before its fifth step, then after the job stopped
    there: the first four steps are in the event files, though no model was ever saved."""
    model, tokenizer = load_causal_lm_for_training(str(llama_dir))
    frame = synthetic_frame.head(16)
    examples = lm_examples(tokenizer, list(frame["prompt"]), list(frame["chosen"]), 64, False)
    live = tmp_path / "live" / "results/models/stopped"
    seen_during_the_job = []

    def loss_then_stop(model, batch):
        micro = len(seen_during_the_job)
        if micro >= 1:
            seen_during_the_job.append(read_scalars(live)["loss"])
        else:
            seen_during_the_job.append(None)
        if micro == 4:
            raise Stopped
        return lm_loss(model, batch)

    with pytest.raises(Stopped):
        train_model(model, examples, [len(ids) for ids, _ in examples],
                    lambda batch: collate_lm(batch, tokenizer.pad_token_id), loss_then_stop, TRAINING,
                    {"mixed_precision": "no"}, tracking=tracking(tmp_path), output_dir="results/models/stopped")
    # Each step's row was there before the next step began.
    assert [[step for step, _ in losses] for losses in seen_during_the_job[1:]] == [[1], [1, 2], [1, 2, 3],
                                                                                 [1, 2, 3, 4]]
    after = read_scalars(live)
    assert [step for step, _ in after["loss"]] == [1, 2, 3, 4]
    assert all(math.isfinite(value) and value > 0 for _, value in after["loss"])
    assert {"loss", "lr", "epoch", "step"} <= set(after)
    assert not (tmp_path / "results").exists()


def test_a_saved_model_folder_holds_the_same_events(tmp_path, llama_dir, synthetic_frame):
    model, tokenizer = load_causal_lm_for_training(str(llama_dir))
    frame = synthetic_frame.head(8)
    examples = lm_examples(tokenizer, list(frame["prompt"]), list(frame["chosen"]), 64, False)
    output = tmp_path / "model"
    result = train_model(model, examples, [len(ids) for ids, _ in examples],
                         lambda batch: collate_lm(batch, tokenizer.pad_token_id), lm_loss, TRAINING,
                         {"mixed_precision": "no"}, tracking=tracking(tmp_path), output_dir=str(output))
    result.save(str(output), tokenizer, {"stage": "test"})
    copied = read_scalars(output / "tensorboard")
    assert copied == read_scalars(live_folder(Tracking.coerce(tracking(tmp_path)), output))
    assert [step for step, _ in copied["loss"]] == [row["step"] for row in result.rows] == [1, 2, 3, 4]
    assert torch.tensor([value for _, value in copied["loss"]]).allclose(
        torch.tensor([row["loss"] for row in result.rows]))


def test_wandb_and_mlflow_get_each_row_as_it_is_made(tmp_path, monkeypatch):
    """With the `tracking` extra installed (not by make setup): W&B offline and MLflow on a local database."""
    pytest.importorskip("wandb", reason="the tracking extra is not installed: pip install -c requirements.lock "
                                        "-e .[tracking]")
    mlflow = pytest.importorskip("mlflow", reason="the tracking extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    trackers = TrainingTrackers({"trackers": ["wandb", "mlflow"], "project": "rrhf-test", "folder": str(tmp_path)},
                                "results/models/x")
    client = mlflow.tracking.MlflowClient()
    run = mlflow.search_runs(experiment_names=["rrhf-test"]).iloc[0]["run_id"]
    for step, loss in [(1, 2.0), (2, 1.5), (3, 1.25)]:
        trackers.log({"step": step, "loss": loss, "kind": "text"})
        assert [(m.step, m.value) for m in client.get_metric_history(run, "loss")][-1] == (step, loss)
    assert trackers.finish({"stage": "test", "rrhf": {"rank_weight": 1.0}}) == 2
    assert list(tmp_path.glob("wandb/offline-run-*"))
