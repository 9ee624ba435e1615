"""The human evaluation through real Snakemake on the shrunk tiny config: the export, the simulated annotators,
Table 3 with its findings claim and Table 4; then people's filled spreadsheets read instead, and a bad one refused
by file and line with nothing written."""

import shutil

import pandas as pd
import pytest
import yaml

from rrhf.studies.human_evaluation.comparison_page import embedded_tasks
from workflow_helpers import run_snakemake

TABLES = {
    "table3": [{"policy": "Alpaca", "setting": "DP", "versus": {"responses": "chosen"}},
               {"policy": "Alpaca", "setting": "DP", "versus": {"policy": "Alpaca", "setting": "none"}}],
    "table4": [{"responses": "chosen"}, {"policy": "Alpaca", "setting": "none"}, {"policy": "Alpaca", "setting": "DP"}],
}
CLAIMS = [{"id": "human-dp-beats-chosen", "claim": "annotators prefer DP to the good replies", "source": "Table 3",
           "metric": "net_win", "row": {"responses": "chosen"}, "versus": {"policy": "Alpaca", "setting": "DP"},
           "direction": "lower"}]


@pytest.fixture(scope="module")
def human_workdir(table_workdir, tmp_path_factory):
    """A copy of the folder where Alpaca's DP row was built, with Tables 3 and 4 over DP, the untrained policy and
    the dataset's good replies, and a claim on Table 3."""
    workdir, overrides = table_workdir
    copy = tmp_path_factory.mktemp("human") / "workflow"
    shutil.copytree(workdir, copy, symlinks=True)
    (copy / "human_tables.yaml").write_text(yaml.safe_dump(TABLES))
    (copy / "human_claims.yaml").write_text(yaml.safe_dump(CLAIMS))
    overrides = {**overrides, "tables": str(copy / "human_tables.yaml"), "findings": str(copy / "human_claims.yaml")}
    return copy, overrides


@pytest.mark.workflow
def test_simulated_annotators_make_table3_and_its_claim(human_workdir):
    workdir, overrides = human_workdir
    run_snakemake(workdir, "results/table3.csv", "results/report/table3.html", "results/table4.csv",
                  "results/report/table4.html", "results/findings.csv", overrides=overrides)
    study = overrides["human_evaluation"]
    key = pd.read_parquet(workdir / "results/human_eval/pairs.parquet")
    assert len(key) == 2 * (study["pairs"] + study["shared_pairs"]) and key["export"].nunique() == 1
    pages = [embedded_tasks((workdir / f"results/human_eval/batch_{k}.html").read_text()) for k in (1, 2)]
    shared = set(key.loc[key["shared"], "pair_id"])
    for batch, page in enumerate(pages, start=1):
        ids = {task["pair_id"] for task in page["tasks"]}
        assert shared <= ids and ids - shared == set(key.loc[key["batch"] == batch, "pair_id"])
        assert page["export"] == key["export"].iloc[0] and page["batch"] == batch
    table = pd.read_csv(workdir / "results/table3.csv")
    assert list(table["b"]) == ["dataset good responses", "tiny-instruct (Alpaca role) none"]
    assert ((table["win"] + table["tie"] + table["lose"]).round(6) == 100).all()
    assert (table["pairs"] == study["pairs"]).all() and (table["annotators"] == 2).all()
    assert (table["judgments"] == study["pairs"]).all()  # each counted pair judged by the one annotator it went to
    judged = pd.read_parquet(workdir / "results/human_eval/judged.parquet")
    first = table.iloc[0]
    counted = judged[(judged["comparison"] == 1) & ~judged["shared"]]
    assert first["win"] == pytest.approx(100 * (counted["outcome"] == "win").mean(), abs=0.01)
    # The claim names the comparison in the other order: its effect is minus DP's net win.
    finding = pd.read_csv(workdir / "results/findings.csv").iloc[0]
    assert finding["effect"] == pytest.approx(-(first["win"] - first["lose"]) / 100, abs=1e-4)
    table4 = pd.read_csv(workdir / "results/table4.csv")
    assert table4.groupby("prompt_id").size().eq(3).all() and table4["prompt_id"].nunique() == 2
    assert "Table 3" in (workdir / "results/report/table3.html").read_text()


@pytest.mark.workflow
def test_peoples_spreadsheets_are_read_and_a_bad_one_is_refused_by_line(human_workdir, tmp_path):
    workdir, overrides = human_workdir
    run_snakemake(workdir, "results/human_eval/batch_1.csv", "results/human_eval/batch_2.csv", overrides=overrides)
    folder = tmp_path / "judgments"
    folder.mkdir()
    for batch, verdict in ((1, "left"), (2, "tie")):
        sheet = pd.read_csv(workdir / f"results/human_eval/batch_{batch}.csv", keep_default_na=False)
        sheet.assign(judgment=verdict, annotator=f"person {batch}").to_csv(folder / f"batch_{batch}.csv", index=False)
    people = {**overrides, "human_evaluation": {**overrides["human_evaluation"], "judgments": str(folder)}}
    run_snakemake(workdir, "results/table3.csv", overrides=people)
    judged = pd.read_parquet(workdir / "results/human_eval/judged.parquet")
    assert set(judged["annotator"]) == {"person 1", "person 2"}
    key = pd.read_parquet(workdir / "results/human_eval/pairs.parquet")
    tie_batch = set(key.loc[key["batch"] == 2, "pair_id"])
    counted = judged[~judged["shared"]]
    assert (counted.loc[counted["pair_id"].isin(tie_batch), "outcome"] == "tie").all()
    left_a = counted[~counted["pair_id"].isin(tie_batch)].merge(key[["pair_id", "left"]], on="pair_id")
    assert ((left_a["left"] == "a") == (left_a["outcome"] == "win")).all()  # "left" is A's win only where A was left
    table = pd.read_csv(workdir / "results/table3.csv")
    assert (table["identical"] == 0).all() and (table["non_contradicting"] == 100).all()  # left vs tie, never opposed

    bad = pd.read_csv(folder / "batch_2.csv", keep_default_na=False)
    bad.loc[3, "pair_id"] = "pair-9999"
    bad.to_csv(folder / "batch_2.csv", index=False)
    failed = run_snakemake(workdir, "results/table3.csv", "--forcerun", "import_judgments", overrides=people,
                           check=False)
    assert failed.returncode != 0
    log = (workdir / "logs/import_judgments/import_judgments.log").read_text()
    text = (folder / "batch_2.csv").read_text()
    line = text[:text.index("pair-9999")].count("\n") + 1  # where the row starts: prompts span several lines
    assert line > 5 and f"{folder / 'batch_2.csv'} line {line}: unknown pair id 'pair-9999'" in log
    assert not (workdir / "results/human_eval/judged.parquet").exists()
