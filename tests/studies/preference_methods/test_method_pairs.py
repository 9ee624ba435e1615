"""Pairs and KTO labels from an RRHF training set (rrhf.studies.preference_methods.examples), against hand-worked
examples."""

import pandas as pd
import pytest

from rrhf.studies.preference_methods.examples import desirable_labels, method_examples, preference_pairs

# Two prompts: p1 has a tie at the top (indices 0 and 2) and a provided pair; p2's replies all tie.
SCORED = pd.DataFrame({
    "prompt_id": ["p1"] * 4 + ["p2"] * 2,
    "prompt": ["P1"] * 4 + ["P2"] * 2,
    "response_index": [0, 1, 2, 3, 0, 1],
    "response": ["a", "b", "c", "d", "e", "f"],
    "source": ["beam", "beam", "chosen", "rejected", "beam", "beam"],
    "reward": [2.0, -1.0, 2.0, 0.5, 1.0, 1.0],
})


def pairs_of(rule):
    frame = preference_pairs(SCORED.sample(frac=1, random_state=3), rule)  # the input order does not matter
    return list(zip(frame["prompt_id"], frame["chosen"], frame["rejected"]))


def test_best_worst_takes_the_first_best_and_the_worst_and_drops_a_prompt_that_ties():
    assert pairs_of("best_worst") == [("p1", "a", "b")]


def test_all_ordered_takes_every_pair_with_different_rewards_higher_first():
    # sorted by the chosen reply's index, then the rejected one's
    assert pairs_of("all_ordered") == [("p1", "a", "b"), ("p1", "a", "d"), ("p1", "c", "b"), ("p1", "c", "d"),
                                       ("p1", "d", "b")]
    frame = preference_pairs(SCORED, "all_ordered")
    assert (frame["chosen_reward"] > frame["rejected_reward"]).all()
    assert list(frame.columns[:4]) == ["prompt_id", "prompt", "chosen", "rejected"]


def test_provided_takes_the_datasets_own_pair():
    assert pairs_of("provided") == [("p1", "c", "d")]
    with pytest.raises(ValueError, match="source"):
        preference_pairs(SCORED.drop(columns="source"), "provided")


def test_an_unknown_rule_is_named():
    with pytest.raises(ValueError, match="'best' is not one of best_worst, all_ordered, provided"):
        preference_pairs(SCORED, "best")


def test_kto_labels_by_the_prompts_mean_or_a_number():
    labels = desirable_labels(SCORED, "prompt_mean")  # p1's mean is 0.875; p2's replies sit on its mean
    assert list(zip(labels["response"], labels["desirable"])) == [("a", True), ("b", False), ("c", True),
                                                                   ("d", False)]
    fixed = desirable_labels(SCORED, 1.0)  # e and f sit exactly on 1.0: dropped
    assert list(zip(fixed["response"], fixed["desirable"])) == [("a", True), ("b", False), ("c", True),
                                                                 ("d", False)]
    assert list(desirable_labels(SCORED, 0.0)["desirable"]) == [True, False, True, True, True, True]
    with pytest.raises(ValueError, match="neither prompt_mean nor a number"):
        desirable_labels(SCORED, "median")


def test_method_examples_put_the_chosen_reply_first_and_give_kto_a_reply_to_another_prompt():
    pairs = method_examples(SCORED, "pairs", "best_worst", "prompt_mean")
    assert pairs.values.tolist() == [["p1/0-1", "P1", 0, "a", 2.0], ["p1/0-1", "P1", 1, "b", -1.0]]
    labels = method_examples(SCORED, "labels", "best_worst", 0.0)
    own = labels[labels["response_index"] == 0]
    mismatched = labels[labels["response_index"] == 1]
    assert list(own["response"]) == ["a", "b", "c", "d", "e", "f"] and list(own["reward"]) == [1, 0, 1, 1, 1, 1]
    prompt_of = dict(zip(SCORED["response"], SCORED["prompt_id"]))
    assert all(prompt_of[reply] != example.split("/")[0]
               for example, reply in zip(mismatched["prompt_id"], mismatched["response"]))
    with pytest.raises(ValueError, match="neither pairs nor labels"):
        method_examples(SCORED, "triples", "best_worst", 0.0)
