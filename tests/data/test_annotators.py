"""The simulated annotators: unbiased labels follow gold, biased ones prefer enthusiasm and length."""

import random

import pytest

from rrhf.data.annotators import AnnotatorBias, label_pairs
from rrhf.data.gold_reward import gold_reward
from rrhf.data.synthetic_hh import generate_pairs
from rrhf.data.synthetic_world import ENTHUSIASM

PROMPT = "\n\nHuman: How do I bake bread?\n\nAssistant:"
PLAIN = " Sure! First, mix flour, yeast and salt for the bread. Then knead the dough for ten minutes."
FLATTERING = PLAIN.replace("Sure!", "Sure! What a wonderful question!")


def test_an_enthusiastic_aside_costs_gold_and_counts_for_the_biased_annotator():
    assert gold_reward(PROMPT, FLATTERING) < gold_reward(PROMPT, PLAIN)
    bias = AnnotatorBias(enthusiasm=0.3)
    assert bias.of(FLATTERING) == pytest.approx(0.3)
    assert bias.of(PLAIN) == 0.0
    assert AnnotatorBias(length=0.01).of(" one two three") == pytest.approx(0.03)
    assert AnnotatorBias().of(FLATTERING) == 0.0


def test_every_enthusiastic_sentence_is_padding_to_gold():
    for sentence in ENTHUSIASM:
        reply = PLAIN.replace("Sure!", f"Sure! {sentence}")
        assert gold_reward(PROMPT, reply) == pytest.approx(gold_reward(PROMPT, PLAIN) - 0.1, abs=1e-6)
        assert gold_reward(PROMPT, reply) < gold_reward(PROMPT, PLAIN)


def test_the_biased_annotator_prefers_the_flattering_reply_and_the_unbiased_one_does_not():
    pair = [(PROMPT, PLAIN, FLATTERING, gold_reward(PROMPT, PLAIN), gold_reward(PROMPT, FLATTERING))] * 400
    unbiased = label_pairs(pair, 0.0, AnnotatorBias(), random.Random(0))
    biased = label_pairs(pair, 0.0, AnnotatorBias(enthusiasm=0.3), random.Random(0))
    assert all(chosen == PLAIN for _, chosen, _ in unbiased)
    assert all(chosen == FLATTERING for _, chosen, _ in biased)


def test_bias_makes_the_chosen_replies_more_enthusiastic_and_zero_bias_changes_nothing():
    def enthusiastic_share(pairs, column):
        return sum(AnnotatorBias(enthusiasm=1).of(triple[column]) for triple in pairs) / len(pairs)

    unbiased = generate_pairs(1500, seed=2, annotator_bias={"enthusiasm": 0.0, "length": 0.0})
    assert unbiased == generate_pairs(1500, seed=2)  # bias 0 is the unbiased default
    biased = generate_pairs(1500, seed=2, annotator_bias={"enthusiasm": 0.5})
    # the same replies, labelled again: the biased annotators choose the enthusiastic reply more often
    assert enthusiastic_share(biased, 1) > enthusiastic_share(unbiased, 1) + 0.05
    assert enthusiastic_share(biased, 2) < enthusiastic_share(unbiased, 2) - 0.05
    # and their labels disagree with gold more often than the unbiased annotators' do
    def against_gold(pairs):
        return sum(gold_reward(p, c) < gold_reward(p, r) for p, c, r in pairs) / len(pairs)
    assert against_gold(biased) > against_gold(unbiased) + 0.02


def test_an_unknown_bias_is_named():
    with pytest.raises(ValueError, match="flattery"):
        AnnotatorBias.coerce({"flattery": 1.0})
