"""Sentences, sub-sentences, segment markers and reward placement (rrhf.data.segments) on hand-made examples."""

import pytest

from rrhf.data.segments import (
    marked_input,
    segment_end_tokens,
    segment_spans,
    segments,
    sentence_boundaries,
    subsentence_boundaries,
)


@pytest.mark.parametrize("text, expected", [
    ("Mix it. Bake it!  Done", ["Mix it.", " Bake it!", "  Done"]),
    ("Mix it. ", ["Mix it. "]),                                 # trailing space stays with the last sentence
    ('He said "stop." Then left.', ['He said "stop."', " Then left."]),  # a closing quote ends it
    ("Use 3.5 cups. Stir.", ["Use 3.5 cups.", " Stir."]),      # no split inside a number
    ("Really?! Yes.", ["Really?!", " Yes."]),
    ("", [""]),
])
def test_sentences(text, expected):
    boundaries = sentence_boundaries(text)
    assert segments(text, boundaries) == expected
    assert boundaries[0] == 0 and boundaries[-1] == len(text)


@pytest.mark.parametrize("text, expected", [
    # Splits after "flour," (5 words before it); not after "well," since only 5 words would follow (6 needed).
    ("First you mix the flour, then you knead the dough well, and finally you bake it.",
     ["First you mix the flour, ", "then you knead the dough well, and finally you bake it."]),
    # "Yes," and "of course," are shorter than 5 words at the start of the sentence: no split.
    ("Yes, of course, you can mix the flour and then knead the dough.",
     ["Yes, of course, you can mix the flour and then knead the dough."]),
    # "sure," alone would be a 1-word sub-sentence: it joins the one before.
    ("I think that you should mix it, sure, and then you knead the dough and bake it.",
     ["I think that you should mix it, sure, ", "and then you knead the dough and bake it."]),
    # Sentences are sub-sentences' outer bounds; a sub-sentence starts at its first word.
    ("Mix it. Bake it!  Done", ["Mix it. ", "Bake it!  ", "Done"]),
])
def test_subsentences(text, expected):
    assert segments(text, subsentence_boundaries(text)) == expected


def test_min_words_is_the_split_threshold():
    text = "Mix the flour, knead the dough, then bake the bread in the oven."
    assert segments(text, subsentence_boundaries(text, min_words=3)) == [
        "Mix the flour, ", "knead the dough, ", "then bake the bread in the oven."]
    # With 5, "Mix the flour," (3 words) opens the sentence, so it joins the next: one split, after "dough,".
    assert segments(text, subsentence_boundaries(text, min_words=5)) == [
        "Mix the flour, knead the dough, ", "then bake the bread in the oven."]


def test_marker_before_each_segment():
    assert marked_input("How do I bake bread?", ["Mix it. ", "Bake it!  ", "Done"]) == (
        "question: How do I bake bread? answer: </s> Mix it. </s> Bake it! </s> Done")


def test_reward_lands_on_the_last_token_of_each_segment():
    text = "Mix it. Bake it!  Done"
    # Hand-made tokens, the space attached to the next word as byte-level BPE does: "Mix", " it", ".", " Bake",
    # " it", "!", "  Done".
    offsets = [(0, 3), (3, 6), (6, 7), (7, 12), (12, 15), (15, 16), (16, 22)]
    assert segment_end_tokens(text, sentence_boundaries(text), offsets) == [2, 5, 6]
    assert segment_end_tokens(text, subsentence_boundaries(text), offsets) == [2, 5, 6]
    # One token across a boundary (".B" merged): it ends the segment it starts in, and the next one shares it.
    merged = [(0, 3), (3, 6), (6, 9), (9, 12), (12, 15), (15, 16), (16, 22)]
    assert segment_end_tokens(text, sentence_boundaries(text), merged) == [2, 5, 6]
    with pytest.raises(ValueError, match="no tokens"):
        segment_end_tokens(text, sentence_boundaries(text), [])


def test_segment_spans_trim_spaces_and_skip_blank_segments():
    text = "Mix it. Bake it!  Done  "
    assert segment_spans(text, subsentence_boundaries(text)) == [(0, 7), (8, 16), (18, 22)]
    assert segment_spans("   ", [0, 3]) == []
