"""Reward models on the policies' own replies: on-policy pairs trained on and held out, the agreement with gold
measured per policy, and results/reward_models.csv, which gathers it per reward build and replicate."""

import json
import math

import pandas as pd
import pytest
from scipy.stats import spearmanr

from rrhf.data.gold_reward import gold_reward
from rrhf.evaluation.reward_builds import COLUMNS, DATASET_PAIRS, criteria_rows, write_reward_models
from rrhf.io import read_provenance, write_json, write_parquet
from rrhf.statistics import spearman
from rrhf.training.reward_model import on_policy_agreement, train_reward_model

# --- on_policy_agreement, by hand -----------------------------------------------------------------------------

# Five held-out pairs: rows 0-4 are the first replies, rows 5-9 the second replies of the same pairs.
REPLIES = pd.DataFrame({
    "policy": ["b", "b", "b", "a", "a"] * 2,
    "reward": [1.0, 0.0, 2.0, 0.5, 3.0] + [0.0, 1.0, 1.0, 1.5, 1.0],
    "gold_reward": [0.3, 0.1, 0.5, 0.2, 0.4] + [0.1, 0.2, 0.5, 0.6, 0.9],
})


def test_on_policy_agreement_per_policy_and_for_all():
    result = on_policy_agreement(REPLIES, pairs=5)
    assert list(result) == ["a", "b", "all"]  # the policies sorted, then all of them
    # b: pairs 0 and 1 ordered like gold, pair 2 has equal gold (skipped); a: pair 3 right, pair 4 wrong.
    assert {p: (r["gold_accuracy"], r["gold_pairs"], r["replies"]) for p, r in result.items()} == {
        "a": (0.5, 2, 4), "b": (1.0, 2, 6), "all": (0.75, 4, 10)}
    for policy, rows in (("a", [3, 4, 8, 9]), ("b", [0, 1, 2, 5, 6, 7]), ("all", list(range(10)))):
        reward, gold = REPLIES.loc[rows, "reward"], REPLIES.loc[rows, "gold_reward"]
        assert result[policy]["spearman"] == pytest.approx(spearman(list(reward), list(gold)))
        assert result[policy]["spearman"] == pytest.approx(spearmanr(reward, gold).statistic)  # ties share ranks
    assert result["a"]["spearman"] == pytest.approx(0.2)  # ranks (1, 4, 3, 2) against (1, 2, 3, 4)


def test_on_policy_agreement_counts_a_reward_tie_as_wrong_and_has_no_accuracy_without_gold_differences():
    replies = pd.DataFrame({"policy": ["x", "y"] * 2, "reward": [1.0, 2.0, 1.0, 0.0],
                            "gold_reward": [0.9, 0.3, 0.1, 0.3]})
    result = on_policy_agreement(replies, pairs=2)
    assert (result["x"]["gold_accuracy"], result["x"]["gold_pairs"]) == (0.0, 1)  # equal rewards: not ordered
    assert (result["y"]["gold_accuracy"], result["y"]["gold_pairs"]) == (None, 0)
    assert math.isnan(result["y"]["spearman"])  # constant gold: no rank correlation
    assert (result["all"]["gold_accuracy"], result["all"]["gold_pairs"], result["all"]["replies"]) == (0.0, 1, 4)


# --- results/reward_models.csv ---------------------------------------------------------------------------------

ON_POLICY_METRICS = {
    "test_accuracy": 0.7, "test_pairs": 40, "test_gold_accuracy": 0.65, "test_gold_pairs": 38,
    "on_policy_held_out": {
        "base": {"replies": 20, "spearman": 0.123456789, "gold_accuracy": 0.6, "gold_pairs": 9},
        "instruct": {"replies": 10, "spearman": None, "gold_accuracy": None, "gold_pairs": 0},
        "all": {"replies": 30, "spearman": 0.3, "gold_accuracy": 0.6, "gold_pairs": 9}},
}


def test_criteria_rows_are_one_per_held_out_policy_then_the_dataset_pairs():
    rows = criteria_rows(ON_POLICY_METRICS, 2, "reward")
    assert [row["policy"] for row in rows] == ["base", "instruct", "all", DATASET_PAIRS]
    assert all(set(row) == set(COLUMNS) and row["replicate"] == 2 and row["reward_model"] == "reward" for row in rows)
    assert rows[0] == {"replicate": 2, "reward_model": "reward", "policy": "base", "spearman": 0.123456789,
                       "gold_accuracy": 0.6, "pairs": 9}  # pairs: those whose gold differs
    assert rows[-1] == {"replicate": 2, "reward_model": "reward", "policy": DATASET_PAIRS, "spearman": None,
                        "gold_accuracy": 0.65, "pairs": 38}
    # A build without on-policy pairs, on a dataset without gold: only the dataset row, empty.
    assert criteria_rows({"test_accuracy": 0.5, "test_pairs": 10}, 0, "rm") == [
        {"replicate": 0, "reward_model": "rm", "policy": DATASET_PAIRS, "spearman": None, "gold_accuracy": None,
         "pairs": None}]


def test_write_reward_models_gathers_every_build_and_replicate(tmp_path):
    first, second = tmp_path / "r0" / "metrics.json", tmp_path / "r1" / "metrics.json"
    write_json(ON_POLICY_METRICS, first)
    write_json({"test_gold_accuracy": 0.5, "test_gold_pairs": 12}, second)
    output, log = tmp_path / "out" / "reward_models.csv", tmp_path / "reward_models.log"
    frame = write_reward_models([str(first), str(second)], [0, 1], ["reward", "reward_sft"], str(output), str(log))
    written = pd.read_csv(output)
    assert list(written.columns) == COLUMNS and len(written) == 5
    # write_json sorts the keys, so "all" comes first in the file (and in the table)
    assert list(zip(written["replicate"], written["reward_model"], written["policy"])) == [
        (0, "reward", "all"), (0, "reward", "base"), (0, "reward", "instruct"), (0, "reward", DATASET_PAIRS),
        (1, "reward_sft", DATASET_PAIRS)]
    assert written["spearman"].iloc[1] == 0.123457  # six significant digits
    assert written[["spearman", "gold_accuracy"]].iloc[2].isna().all() and written["pairs"].iloc[2] == 0  # no gold
    assert written["pairs"].iloc[4] == 12 and written["gold_accuracy"].iloc[4] == 0.5
    assert frame["policy"].tolist() == written["policy"].tolist()
    assert "reward_sft" in log.read_text()


# --- training on on-policy pairs, end to end -------------------------------------------------------------------

TRAINING = {"epochs": 1, "learning_rate": 1e-3, "batch_size": 8, "max_length": 96, "seed": 0}
HELD_OUT = [True, False, True, False, True, False, True, False, False, False, True, False]  # a: 3, b: 2


@pytest.fixture(scope="module")
def on_policy_run(tmp_path_factory, synthetic_frame, tiny_lm_dir):
    """(output folder, returned metrics, on-policy pairs) of train_reward_model on 32 dataset pairs and 12 on-policy
    pairs (policies a and b, 5 of them held out)."""
    folder = tmp_path_factory.mktemp("on_policy_reward")
    provenance = {"stage": "test", "dataset": {"source": "synthetic"}}
    write_parquet(synthetic_frame.head(32), folder / "train.parquet", provenance)
    write_parquet(synthetic_frame.iloc[32:48], folder / "test.parquet", provenance)
    rows = synthetic_frame.iloc[100:112].reset_index(drop=True)
    pairs = rows.assign(policy=["a"] * 6 + ["b"] * 6, held_out=HELD_OUT,
                        chosen_gold=[gold_reward(p, c) for p, c in zip(rows["prompt"], rows["chosen"])],
                        rejected_gold=[gold_reward(p, r) for p, r in zip(rows["prompt"], rows["rejected"])])
    pairs = pairs[["prompt_id", "prompt", "chosen", "rejected", "policy", "chosen_gold", "rejected_gold", "held_out"]]
    write_parquet(pairs, folder / "on_policy.parquet", {"stage": "collect_preferences"})
    output = folder / "model"
    metrics = train_reward_model(str(tiny_lm_dir), str(folder / "train.parquet"), str(folder / "test.parquet"),
                                 str(output), {"kind": "reward", "dataset": "test", "training": TRAINING}, {},
                                 on_policy_data=str(folder / "on_policy.parquet"))
    return output, metrics, pairs


def test_on_policy_pairs_are_trained_on_and_held_out_ones_measured(on_policy_run):
    output, metrics, pairs = on_policy_run
    saved = json.loads((output / "metrics.json").read_text())
    assert saved["dataset_pairs"] == 32
    assert saved["on_policy_pairs"] == (~pairs["held_out"]).sum() == 7
    # Every training pair is in the optimisation steps: ceil((32 + 7) / 8) = 5, where the dataset alone makes 4.
    assert len(pd.read_parquet(output / "train_log.parquet")) == math.ceil(39 / TRAINING["batch_size"]) == 5
    assert list(metrics["on_policy_held_out"]) == ["a", "b", "all"]
    held_out = saved["on_policy_held_out"]
    assert set(held_out) == {"a", "b", "all"}
    for policy in ("a", "b"):
        mine = pairs[pairs["held_out"] & (pairs["policy"] == policy)]
        assert held_out[policy]["replies"] == 2 * len(mine)
        assert held_out[policy]["gold_pairs"] == (mine["chosen_gold"] != mine["rejected_gold"]).sum()
    assert (held_out["a"]["replies"], held_out["b"]["replies"], held_out["all"]["replies"]) == (6, 4, 10)
    assert held_out["all"]["gold_pairs"] == held_out["a"]["gold_pairs"] + held_out["b"]["gold_pairs"]
    for scores in held_out.values():
        assert scores["gold_accuracy"] is None or 0.0 <= scores["gold_accuracy"] <= 1.0
        assert scores["spearman"] is None or -1.0 <= scores["spearman"] <= 1.0
    assert saved == metrics
    assert read_provenance(output / "train_log.parquet")["stage"] == "train_reward_model"
    # The table reads these metrics back: one row per policy and all, then the dataset's test pairs.
    rows = criteria_rows(saved, 0, "reward")
    assert sorted(row["policy"] for row in rows[:-1]) == ["a", "all", "b"] and rows[-1]["policy"] == DATASET_PAIRS
    assert rows[-1]["pairs"] == saved["test_gold_pairs"]


def test_held_out_agreement_is_that_of_the_saved_model(on_policy_run):
    from rrhf.models.loading import load_reward_model
    from rrhf.scoring.rewards import score

    output, metrics, pairs = on_policy_run
    model, tokenizer = load_reward_model(str(output))
    held = pairs[pairs["held_out"]]
    prompts = [*held["prompt"], *held["prompt"]]
    rewards = score(model, tokenizer, prompts, [*held["chosen"], *held["rejected"]], max_length=96)
    gold = [*held["chosen_gold"], *held["rejected_gold"]]
    assert metrics["on_policy_held_out"]["all"]["spearman"] == pytest.approx(spearman(rewards, gold), abs=1e-6)
    half = len(held)
    right = sum((rewards[i] - rewards[half + i]) * (gold[i] - gold[half + i]) > 0 for i in range(half)
                if gold[i] != gold[half + i])
    total = sum(gold[i] != gold[half + i] for i in range(half))
    assert metrics["on_policy_held_out"]["all"]["gold_accuracy"] == (right / total if total else None)
