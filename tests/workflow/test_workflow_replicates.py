"""Real Snakemake runs: replicates of a one-row Table 6, and every trainer's log in TensorBoard (the
table_workdir fixture of conftest.py)."""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from rrhf.io import read_provenance
from workflow_helpers import jobs_by_rule, run_snakemake

pytestmark = pytest.mark.workflow


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of the TensorBoard event files under ``folder``, read with tensorboard's own
    reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted({path.parent for path in folder.rglob("events.out.tfevents.*")})
    assert len(runs) == 1, runs
    events = EventAccumulator(str(runs[0]), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize("model", ["results/models/instruct/DP", "resources/models/reward"])
def test_every_trainer_logs_its_training_log_to_tensorboard(table_workdir, model):
    workdir, _ = table_workdir
    log = pd.read_parquet(workdir / model / "train_log.parquet")
    scalars = tensorboard_scalars(workdir / model / "tensorboard")
    assert tensorboard_scalars(workdir / "logs" / "tensorboard" / model) == scalars  # where it was watched live
    numeric = [c for c in log.columns if pd.api.types.is_numeric_dtype(log[c]) and not log[c].isna().all()]
    assert set(scalars) == set(numeric)
    for column in numeric:
        expected = [(int(step), value) for step, value in zip(log["step"], log[column]) if pd.notna(value)]
        assert [step for step, _ in scalars[column]] == [step for step, _ in expected], column
        assert [value for _, value in scalars[column]] == pytest.approx([v for _, v in expected], rel=1e-6), column


def test_every_trained_model_folder_has_its_card_with_its_evaluation(table_workdir):
    from huggingface_hub import ModelCard

    workdir, overrides = table_workdir
    # Other tests share the folder and may train the model again: its evaluation is brought up to date first.
    run_snakemake(workdir, "results/eval/instruct/DP/metrics.json", "results/table6.csv", overrides=overrides)
    policy = ModelCard.load(workdir / "results/models/instruct/DP/README.md")
    assert policy.data.base_model == "resources/models/instruct" and "rrhf-workflow" in policy.data.tags
    assert "`train_rrhf` stage: RRHF" in policy.text and "`results/scored/instruct/DP.parquet`" in policy.text
    assert "Setting `DP`, as the training set records it." in policy.text
    evaluation = json.loads((workdir / "results/eval/instruct/DP/metrics.json").read_text())
    assert "### `results/eval/instruct/DP`" in policy.text
    assert {result.metric_type: result.metric_value for result in policy.data.eval_results}["reward_mean"] == \
        pytest.approx(evaluation["reward_mean"])
    reward = ModelCard.load(workdir / "resources/models/reward/README.md")
    assert "`train_reward_model` stage" in reward.text and "| test_accuracy |" in reward.text
    # Writing the evaluation into the folder does not make Snakemake think the model changed.
    assert "Nothing to be done" in run_snakemake(workdir, "-n", "results/table6.csv", overrides=overrides).stdout


def test_replicates_reuse_replicate_zero_and_reseed_the_others(table_workdir, tmp_path):
    source, overrides = table_workdir
    workdir = tmp_path / "replicates"
    shutil.copytree(source, workdir, symlinks=True)
    run_snakemake(workdir, "results/table6.csv", overrides=overrides)  # up to date (other tests change it)
    before = {path: path.read_bytes() for path in (workdir / "results").rglob("*")
              if path.is_file() and not path.name.startswith("table") and "report" not in path.parts}
    plan = run_snakemake(workdir, "-n", "results/table6.csv", overrides={**overrides, "replicates": 3})
    jobs = jobs_by_rule(plan.stdout)
    outputs = re.findall(r"^\s+output: (\S+)", plan.stdout, re.M)
    # Replicates 1 and 2 each build the base and the evaluation LM and train DP; replicate 0 is all there.
    assert jobs["table6"] == 1 and jobs["train_rrhf"] == 2 and jobs["pretrain_lm"] == 4
    assert all("replicate1/" in path or "replicate2/" in path or path.endswith("table6.csv") for path in outputs)
    run_snakemake(workdir, "results/table6.csv", overrides={**overrides, "replicates": 2})
    assert all(path.read_bytes() == content for path, content in before.items())  # replicate 0 untouched
    one = json.loads((workdir / "results/eval/instruct/DP/metrics.json").read_text())
    two = json.loads((workdir / "results/replicate1/eval/instruct/DP/metrics.json").read_text())
    assert one["reward_mean"] != two["reward_mean"]  # another seed, another model
    log = pd.read_parquet(workdir / "results/replicate1/models/instruct/DP/train_log.parquet")
    assert read_provenance(workdir / "results/replicate1/models/instruct/DP/train_log.parquet")["rrhf"]["training"][
        "seed"] != 42 and len(log)
    table = pd.read_csv(workdir / "results/table6.csv")
    assert table["replicates"].tolist() == [2]
    assert table["reward"].iloc[0] == pytest.approx((one["reward_mean"] + two["reward_mean"]) / 2, rel=1e-5)
    assert table["reward_ci95"].iloc[0] == pytest.approx(12.7062047 * abs(one["reward_mean"] - two["reward_mean"])
                                                         / 2, rel=1e-5)  # t_{0.975,1} * sd / sqrt(2)
