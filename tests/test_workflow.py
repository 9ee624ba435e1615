"""Real Snakemake runs of the tiny config (made smaller) from nothing, in a scratch folder."""

import json
import math
import shutil

import pandas as pd
import pytest
import yaml

from rrhf.io import read_provenance
from rrhf.text_metrics import words
from workflow_helpers import FAST_OVERRIDES, jobs_by_rule, run_snakemake

pytestmark = pytest.mark.workflow
TRAIN_PROMPTS = FAST_OVERRIDES["data"]["train_prompts"]
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "source", "reward"]
TRAINING_ROWS_PER_PROMPT = {"DP": 6, "D": 4, "P": 2}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder where the scored training sets of the instruct policy have been built from nothing."""
    path = tmp_path_factory.mktemp("workflow")
    run_snakemake(path, *(f"results/scored/instruct/{s}.parquet" for s in ("DP", "D", "P")),
                  overrides=FAST_OVERRIDES)
    return path


def test_data_stage_writes_normalised_splits(workdir):
    train = pd.read_parquet(workdir / "resources/data/synthetic_hh/train.parquet")
    test = pd.read_parquet(workdir / "resources/data/synthetic_hh/test.parquet")
    assert list(train.columns) == ["prompt_id", "prompt", "chosen", "rejected"]
    assert train["prompt_id"].is_unique and test["prompt_id"].is_unique
    assert not set(train["prompt_id"]) & set(test["prompt_id"])
    assert len(train) + len(test) == FAST_OVERRIDES["datasets"]["synthetic_hh"]["num_pairs"]


def test_models_are_built_in_hf_format(workdir):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    for name in ("base", "instruct"):
        folder = workdir / "resources/models" / name
        assert (folder / "model.safetensors").exists()
        assert AutoModelForCausalLM.from_pretrained(folder).config.num_hidden_layers == 1
    reward = AutoModelForSequenceClassification.from_pretrained(workdir / "resources/models/reward")
    assert reward.config.num_labels == 1
    log = (workdir / "logs/train_reward_model/reward.log").read_text()
    assert "held-out pairwise accuracy" in log


def test_samples_have_one_row_per_prompt_and_response(workdir):
    samples = pd.read_parquet(workdir / "results/samples/instruct/diverse_beam.parquet")
    assert list(samples.columns) == ["prompt_id", "prompt", "response_index", "response", "source"]
    assert len(samples) == TRAIN_PROMPTS * 4
    assert all(sorted(group) == [0, 1, 2, 3] for _, group in samples.groupby("prompt_id")["response_index"])
    assert read_provenance(workdir / "results/samples/instruct/diverse_beam.parquet")["method"] == "diverse_beam"


@pytest.mark.parametrize("setting, sources", [
    ("DP", {"diverse_beam", "chosen", "rejected"}),
    ("D", {"diverse_beam"}),
    ("P", {"chosen", "rejected"}),
])
def test_scored_settings(workdir, setting, sources):
    per_prompt = TRAINING_ROWS_PER_PROMPT[setting]
    scored = pd.read_parquet(workdir / f"results/scored/instruct/{setting}.parquet")
    assert list(scored.columns) == SCORED_COLUMNS
    assert len(scored) == TRAIN_PROMPTS * per_prompt
    assert set(scored["source"]) == sources
    assert scored["reward"].notna().all() and scored["reward"].dtype == float
    assert (scored.groupby("prompt_id").size() == per_prompt).all()


def test_provided_rewards_are_shared_between_settings(workdir):
    dp = pd.read_parquet(workdir / "results/scored/instruct/DP.parquet")
    p = pd.read_parquet(workdir / "results/scored/instruct/P.parquet")
    provided = dp[dp["source"] != "diverse_beam"].set_index(["prompt_id", "source"])["reward"].sort_index()
    assert provided.equals(p.set_index(["prompt_id", "source"])["reward"].sort_index())


def test_second_run_has_nothing_to_do(workdir):
    result = run_snakemake(workdir, "-n", *(f"results/scored/instruct/{s}.parquet" for s in ("DP", "D", "P")),
                           overrides=FAST_OVERRIDES)
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.fixture(scope="module")
def table_workdir(workdir):
    """The same folder, with Table 6 reduced to one row (Alpaca, DP) and built end to end."""
    tables = workdir / "tables.yaml"
    tables.write_text(yaml.safe_dump({"table6": [{"policy": "Alpaca", "setting": "DP"}],
                                      "table7": [{"policy": "Alpaca", "setting": "DP"}]}))
    overrides = {**FAST_OVERRIDES, "tables": str(tables)}
    run_snakemake(workdir, "results/table6.csv", overrides=overrides)
    return workdir, overrides


def test_table6_row_end_to_end(table_workdir):
    workdir, _ = table_workdir
    table = pd.read_csv(workdir / "results/table6.csv")
    assert list(table.columns) == ["policy", "setting", "ppl", "reward", "reward_sem", "gold_reward",
                                   "gold_reward_sem", "repetition", "train_reward_mean", "train_reward_std",
                                   "train_reward_max"]
    assert table[["policy", "setting"]].values.tolist() == [["tiny-instruct (Alpaca role)", "DP"]]
    numbers = table.drop(columns=["policy", "setting"])
    assert all(pd.api.types.is_numeric_dtype(dtype) for dtype in numbers.dtypes)  # 0 reads back as an integer
    assert numbers.map(lambda v: math.isfinite(v)).all().all()
    assert table["ppl"].iloc[0] > 1
    assert -1 <= table["gold_reward"].iloc[0] <= 1
    metrics = json.loads((workdir / "results/eval/instruct/DP/metrics.json").read_text())
    generations = pd.read_parquet(workdir / "results/eval/instruct/DP/generations.parquet")
    assert metrics["n"] == len(generations) == FAST_OVERRIDES["data"]["test_prompts"]
    sem = generations["reward"].std(ddof=1) / math.sqrt(len(generations))
    assert table["reward_sem"].iloc[0] == pytest.approx(sem, rel=1e-4, abs=1e-9)
    assert table["gold_reward"].iloc[0] == pytest.approx(generations["gold_reward"].mean(), rel=1e-4)
    assert 0 <= metrics["distinct_2"] <= 1
    assert metrics["response_words"] == pytest.approx(generations["response"].map(lambda r: len(words(r))).mean())
    assert table["train_reward_max"].iloc[0] >= table["train_reward_mean"].iloc[0]
    log = pd.read_parquet(workdir / "results/models/instruct/DP/train_log.parquet")
    assert {"step", "epoch", "loss", "rank_loss", "ft_loss", "lr"} <= set(log.columns)


def test_reward_model_is_judged_against_gold_on_the_training_sets(table_workdir):
    workdir, overrides = table_workdir
    run_snakemake(workdir, "results/eval/reward_model/metrics.json", overrides=overrides)
    metrics = json.loads((workdir / "results/eval/reward_model/metrics.json").read_text())
    agreement = metrics["training_sets"]["instruct/DP"]
    assert agreement["responses"] == TRAIN_PROMPTS * TRAINING_ROWS_PER_PROMPT["DP"]
    assert -1 <= agreement["spearman"] <= 1
    assert 0 <= metrics["held_out"]["test_gold_accuracy"] <= 1


def test_nothing_changed_means_nothing_to_do(table_workdir):
    workdir, overrides = table_workdir
    result = run_snakemake(workdir, "-n", "results/table6.csv", overrides=overrides)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_the_decoding_reruns_only_evaluation_and_tables(table_workdir):
    workdir, overrides = table_workdir
    changed = {**overrides, "evaluation": {"decoding": {"max_new_tokens": 10}}}
    result = run_snakemake(workdir, "-n", "results/table6.csv", overrides=changed)
    assert jobs_by_rule(result.stdout) == {"evaluate_policy": 1, "table6": 1}


def test_sharded_sampling_and_scoring_gather_to_the_same_training_set(workdir, tmp_path):
    # Reuse the built data and models; sample and score again in 2 shards.
    shutil.copytree(workdir / "resources", tmp_path / "resources", copy_function=shutil.copy2)
    overrides = {**FAST_OVERRIDES, "shards": 2}
    targets = ["results/scored/instruct/DP.parquet", "results/samples/instruct/diverse_beam.parquet"]
    planned = jobs_by_rule(run_snakemake(tmp_path, "-n", *targets, overrides=overrides).stdout)
    assert planned == {"sample_responses": 2, "score_samples": 2, "score_provided": 2, "gather_shards": 3,
                       "assemble_training_set": 1}
    run_snakemake(tmp_path, *targets, overrides=overrides)
    shards = [pd.read_parquet(tmp_path / f"results/samples/instruct/diverse_beam/shard{i}.parquet") for i in (0, 1)]
    assert not set(shards[0]["prompt_id"]) & set(shards[1]["prompt_id"])
    gathered = pd.read_parquet(tmp_path / "results/samples/instruct/diverse_beam.parquet")
    assert len(gathered) == sum(map(len, shards)) == TRAINING_ROWS_PER_PROMPT["D"] * TRAIN_PROMPTS
    unsharded = pd.read_parquet(workdir / "results/scored/instruct/DP.parquet")
    scored = pd.read_parquet(tmp_path / "results/scored/instruct/DP.parquet")
    assert list(scored.columns) == SCORED_COLUMNS
    assert sorted(set(scored["prompt_id"])) == sorted(set(unsharded["prompt_id"]))
    assert len(scored) == len(unsharded)
    provided = ["prompt_id", "source", "reward"]
    pd.testing.assert_frame_equal(  # the provided replies' rewards do not depend on sharding
        scored[scored["source"] != "diverse_beam"][provided].sort_values(provided[:2]).reset_index(drop=True),
        unsharded[unsharded["source"] != "diverse_beam"][provided].sort_values(provided[:2]).reset_index(drop=True),
        atol=1e-5)


TINY_PPO = {"training": {"learning_rate": 1e-4, "batch_size": 4, "max_length": 128, "seed": 1,
                         "lr_schedule": "constant", "warmup_ratio": 0.0},
            "total_steps": 8, "num_rollouts": 8, "chunk_size": 8, "ppo_epochs": 1,  # 4 iterations of 2 steps
            "generation": {"max_new_tokens": 12, "temperature": 0.5}}


@pytest.fixture(scope="module")
def baseline_workdir(workdir):
    """The same folder, with Table 2 reduced to one row of each new kind and Table 5 to two, built end to end."""
    tables = workdir / "baseline_tables.yaml"
    tables.write_text(yaml.safe_dump({
        "table2": [{"responses": "chosen"}, {"policy": "Alpaca", "setting": "best-of-2"},
                   {"policy": "Alpaca", "setting": "PPO"}],
        "table5": [{"reward_model": True}, {"policy": "Alpaca", "setting": "PPO"}]}))
    overrides = {**FAST_OVERRIDES, "tables": str(tables), "ppo": TINY_PPO,
                 "evaluation": {**FAST_OVERRIDES["evaluation"], "best_of_n": {"max_new_tokens": 12, "batch_size": 8}}}
    planned = jobs_by_rule(run_snakemake(workdir, "-n", "results/table2.csv", "results/table5.csv",
                                         overrides=overrides).stdout)
    run_snakemake(workdir, "results/table2.csv", "results/table5.csv", overrides=overrides)
    return workdir, overrides, planned


def test_table2_rows_of_each_new_kind(baseline_workdir):
    workdir, _, planned = baseline_workdir
    assert {key: planned[key] for key in ("train_ppo", "evaluate_best_of_n", "evaluate_policy",
                                          "evaluate_provided")} == {
        "train_ppo": 1, "evaluate_best_of_n": 1, "evaluate_policy": 1, "evaluate_provided": 1}
    table = pd.read_csv(workdir / "results/table2.csv", keep_default_na=False)
    assert list(table.columns) == ["policy", "setting", "ppl", "reward", "reward_sem", "gold_reward",
                                   "gold_reward_sem", "repetition"]
    assert table[["policy", "setting"]].values.tolist() == [
        ["dataset", "good responses"], ["tiny-instruct (Alpaca role)", "best-of-2"],
        ["tiny-instruct (Alpaca role)", "PPO"]]
    assert table["ppl"].tolist()[1] == ""  # best-of-n reports no perplexity
    assert float(table["ppl"].iloc[0]) > 1 and float(table["ppl"].iloc[2]) > 1
    best = pd.read_parquet(workdir / "results/eval/instruct/best-of-2/samples.parquet")
    assert best.groupby("prompt_id").size().eq(2).all()
    assert float(table["reward"].iloc[1]) == pytest.approx(best.groupby("prompt_id")["reward"].max().mean(), rel=1e-5)


def test_ppo_run_in_the_workflow(baseline_workdir):
    workdir, _, _ = baseline_workdir
    model = workdir / "results/models/instruct/PPO"
    log = pd.read_parquet(model / "train_log.parquet")
    assert len(log) == 4 and log["kl"].map(math.isfinite).all() and log["gold_reward"].notna().all()
    assert (model / "value_head.safetensors").exists() and (model / "model.safetensors").exists()
    assert (workdir / "logs/train_ppo/instruct.log").read_text().count("PPO iteration") == 4
    assert read_provenance(model / "train_log.parquet")["stage"] == "train_ppo"


def test_table5_reward_model_and_policy_rows(baseline_workdir):
    workdir, _, _ = baseline_workdir
    table = pd.read_csv(workdir / "results/table5.csv")
    assert table[["policy", "setting"]].values.tolist() == [["tiny-reward (gptj-rm-static role)", "reward model"],
                                                           ["tiny-instruct (Alpaca role)", "PPO"]]
    test_pairs = len(pd.read_parquet(workdir / "resources/data/synthetic_hh/test.parquet"))
    assert table["pairs"].tolist() == [test_pairs, test_pairs]
    assert table["accuracy"].between(0, 1).all()
