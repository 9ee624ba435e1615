"""RRHF's successors through real Snakemake on the shrunk tiny config: the methods table planned and built for DPO,
SimPO and KTO on DP's training set beside RRHF, the examples and reference log-probabilities made once per
training set, and the training cost read from Snakemake's benchmarks."""

import shutil

import pandas as pd
import pytest
import yaml

from workflow_helpers import jobs_by_rule, run_snakemake

TABLES = {"table_methods": [{"policy": "Alpaca", "setting": setting}
                            for setting in ("none", "DP", "DPO@DP", "SimPO@DP", "KTO@DP")]}


@pytest.mark.workflow
def test_methods_table_on_dps_training_set(table_workdir, tmp_path_factory):
    workdir, overrides = table_workdir
    copy = tmp_path_factory.mktemp("methods") / "workflow"
    shutil.copytree(workdir, copy, symlinks=True)
    (copy / "method_tables.yaml").write_text(yaml.safe_dump(TABLES))
    overrides = {**overrides, "tables": str(copy / "method_tables.yaml")}
    planned = jobs_by_rule(run_snakemake(copy, "-n", "results/table_methods.csv", overrides=overrides).stdout)
    # DPO and SimPO share DP's pairs; DPO and KTO each need rho's log-probabilities of their examples.
    assert {rule: planned.get(rule) for rule in ("method_examples", "reference_logprobs", "train_preference_method",
                                                 "table_methods")} == {
        "method_examples": 2, "reference_logprobs": 2, "train_preference_method": 3, "table_methods": 1}
    run_snakemake(copy, "results/table_methods.csv", overrides=overrides)
    table = pd.read_csv(copy / "results/table_methods.csv")
    assert list(table["setting"]) == ["none", "DP", "DPO@DP", "SimPO@DP", "KTO@DP"]
    trained = table["setting"] != "none"
    assert table.loc[trained, "train_seconds"].gt(0).all() and table.loc[~trained, "train_seconds"].isna().all()
    assert table.loc[trained, "train_peak_memory_mb"].gt(0).all()
    assert table["kl"].iloc[0] == 0 and table["gold_reward"].notna().all()
    # DPO's cost includes its reference stage: more than its training job alone.
    dpo_training = pd.read_csv(copy / "logs/benchmarks/train_preference_method/instruct_DPO@DP.tsv", sep="\t")
    assert table.set_index("setting").loc["DPO@DP", "train_seconds"] > dpo_training["s"].iloc[-1]
    log = pd.read_parquet(copy / "results/models/instruct/DPO@DP/train_log.parquet")
    assert {"loss", "preference_accuracy", "chosen_logp"} <= set(log.columns)
