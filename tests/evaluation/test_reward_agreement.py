"""Agreement of the reward model with gold: ranks, Spearman, pair orderings, the stage, against hand values."""

import json
import math

import pandas as pd
import pytest

from rrhf.data.gold_reward import gold_reward
from rrhf.evaluation.reward_agreement import evaluate_reward_model, training_set_agreement, within_prompt_pairs
from rrhf.io import write_parquet
from rrhf.statistics import average_ranks, ordered_like_gold, pearson, spearman

BREAD = "\n\nHuman: How do I bake bread?\n\nAssistant:"
COMPLETE = (" First, mix flour, yeast and salt for the bread. Then knead the dough for ten minutes. Next, let the "
            "bread rise for an hour. Finally, bake the loaf hot for thirty minutes.")
TWO_STEPS = " First, mix flour, yeast and salt for the bread. Finally, knead the dough for ten minutes."
REFUSAL = " I can't help with that."


def test_average_ranks_share_ties():
    assert average_ranks([10, 20, 10]) == [1.5, 3.0, 1.5]
    assert average_ranks([3, 1, 2]) == [3.0, 1.0, 2.0]
    assert average_ranks([5, 5, 5, 5]) == [2.5] * 4


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 100, 2, 3]) == pytest.approx(0.4)  # 1 - 6 * (0 + 4 + 1 + 1) / (4 * 15)
    # ties: ranks [1, 2.5, 2.5, 4] against [1, 2, 3, 4]
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4]))
    assert spearman([1, 2, 3], [7, 20, 30]) == pytest.approx(spearman([0.1, 0.2, 0.3], [1, 2, 3]))  # only ranks
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))


def test_ordered_like_gold_skips_gold_ties_and_counts_reward_ties_as_wrong():
    right, total = ordered_like_gold([2, 1, 5, 3], [1, 2, 5, 0], [0.9, 0.3, 0.5, 0.2], [0.1, 0.1, 0.4, 0.2])
    assert (right, total) == (1, 3)  # pair 1 right, pair 2 wrong, pair 3 a reward tie, pair 4 a gold tie


def test_within_prompt_pairs_compares_only_responses_to_the_same_prompt():
    frame = pd.DataFrame({"prompt_id": ["a", "a", "a", "b", "b"],
                          "reward": [3.0, 2.0, 1.0, 0.0, 9.0],
                          "gold_reward": [0.9, 0.1, 0.5, 0.2, 0.1]})
    # a: (3 vs 2) right, (3 vs 1) right, (2 vs 1) wrong; b: (0 vs 9) wrong
    assert within_prompt_pairs(frame) == (2, 4)


def scored_frame():
    rows = [("p1", BREAD, COMPLETE, 2.0), ("p1", BREAD, TWO_STEPS, 1.0), ("p1", BREAD, REFUSAL, 1.5),
            ("p2", BREAD, TWO_STEPS, 0.5), ("p2", BREAD, REFUSAL, -1.0)]
    frame = pd.DataFrame(rows, columns=["prompt_id", "prompt", "response", "reward"])
    frame["response_index"] = frame.groupby("prompt_id").cumcount()
    frame["source"] = "beam"
    return frame


def test_training_set_agreement_by_hand():
    frame = scored_frame()
    frame["gold_reward"] = [gold_reward(p, r) for p, r in zip(frame["prompt"], frame["response"])]
    complete, two, refusal = (gold_reward(BREAD, text) for text in (COMPLETE, TWO_STEPS, REFUSAL))
    assert complete > two > refusal
    agreement = training_set_agreement(frame)
    assert agreement["responses"] == 5
    # p1: complete > two right, complete > refusal right, two vs refusal wrong (1.0 < 1.5); p2: right
    assert agreement["within_prompt_pair_accuracy"] == pytest.approx(3 / 4)
    assert agreement["within_prompt_pairs"] == 4
    assert agreement["gold_of_best_by_reward"] == pytest.approx((complete + two) / 2)
    assert agreement["gold_of_best_by_gold"] == pytest.approx((complete + two) / 2)
    assert agreement["spearman"] == pytest.approx(spearman(list(frame["reward"]), list(frame["gold_reward"])))


def test_evaluate_reward_model_stage(tmp_path):
    reward_model = tmp_path / "reward"
    reward_model.mkdir()
    (reward_model / "metrics.json").write_text(json.dumps({"test_accuracy": 0.8, "test_gold_accuracy": 0.9}))
    # The gold reward is the one of the dataset the scored set's provenance records.
    write_parquet(scored_frame(), tmp_path / "DP.parquet", {"stage": "test", "dataset": {"source": "synthetic"}})
    output = tmp_path / "out" / "metrics.json"
    result = evaluate_reward_model(str(reward_model), {"instruct/DP": str(tmp_path / "DP.parquet")}, str(output))
    assert json.loads(output.read_text()) == result
    assert result["held_out"] == {"test_accuracy": 0.8, "test_gold_accuracy": 0.9}
    assert result["training_sets"]["instruct/DP"]["within_prompt_pair_accuracy"] == pytest.approx(3 / 4)

    # A dataset without a gold reward, and a reward model from elsewhere (no metrics.json): nothing to compare.
    write_parquet(scored_frame(), tmp_path / "HH.parquet", {"stage": "test", "dataset": {"source": "anthropic_jsonl"}})
    elsewhere = evaluate_reward_model(str(tmp_path / "hub-model"), {"instruct/DP": str(tmp_path / "HH.parquet")},
                                      str(tmp_path / "other.json"))
    assert elsewhere["held_out"] == {} and elsewhere["training_sets"] == {}
