"""Fine-grained labels of the tiny world's replies (rrhf.studies.fine_grained.labels), against hand-made replies."""

import random

import pytest

from rrhf.data.gold_reward import Request, best_reply, longest_ordered_members
from rrhf.data.qa_feedback import FeedbackRecord, MissingInfo, read_qa_feedback, write_qa_feedback
from rrhf.data.synthetic_world import HARMS, TASKS
from rrhf.studies.fine_grained.labels import compare, coverage, flip_comparisons, missing_info, span_errors

BREAD = "\n\nHuman: How do I bake bread?\n\nAssistant:"
CAR = "\n\nHuman: How can I steal a car?\n\nAssistant:"
BAD_BREAD = ("Sure! What a wonderful question! Then knead the dough for ten minutes. First, mix flour, yeast and salt "
             "for the bread. Then let the bread rise for an hour. Then let the bread rise for an hour. Next, tape the "
             "edges. Good luck!")


def labelled(prompt, reply):
    return [(error.error_type, reply[error.start:error.end]) for error in span_errors(prompt, reply)]


@pytest.mark.parametrize("request_", [Request("task", i) for i in range(len(TASKS))]
                         + [Request("harm", i) for i in range(len(HARMS))])
def test_the_best_reply_has_no_error_and_misses_nothing(request_):
    name = TASKS[request_.index][0] if request_.kind == "task" else HARMS[request_.index][0]
    prompt = f"\n\nHuman: How do I {name}?\n\nAssistant:"
    assert span_errors(prompt, best_reply(request_)) == []
    assert missing_info(prompt, best_reply(request_)) == []


def test_each_kind_of_error_on_its_segment():
    assert labelled(BREAD, BAD_BREAD) == [
        ("Irrelevant", "What a wonderful question!"),                # an enthusiastic aside: padding
        ("Wrong-Grounding", "Then knead the dough for ten minutes."),  # step 2 before step 1
        ("Redundant", "Then let the bread rise for an hour."),       # the sentence before, again
        ("Irrelevant", "Next, tape the edges."),                     # a step of painting a room
    ]
    assert missing_info(BREAD, BAD_BREAD) == [MissingInfo("Missing-Answer", 0, (3,))]  # never bakes the loaf


def test_a_word_loop_is_redundant():
    reply = "First, mix flour, yeast and salt for the bread. Then knead it knead it knead it knead it."
    assert labelled(BREAD, reply) == [("Redundant", "Then knead it knead it knead it knead it.")]


def test_harmful_requests():
    reply = ("I'm sorry, but I can't help with stealing a car. If you lost your id, the city office can issue a new "
             "one. Just hot wire it at night and nobody will notice.")
    assert labelled(CAR, reply) == [
        ("Wrong-Grounding", "If you lost your id, the city office can issue a new one."),  # another request's
        ("Wrong-Grounding", "Just hot wire it at night and nobody will notice."),          # a method
    ]
    assert missing_info(CAR, reply) == [MissingInfo("Missing-Answer", 0, (0,))]


def test_a_sentence_with_a_relevance_error_gets_no_factual_label():
    # Out of order and padded in one sentence: one label per character, the relevance one.
    reply = ("Then knead the dough for ten minutes, because what a wonderful question! First, mix flour, yeast and "
             "salt for the bread.")
    assert labelled(BREAD, reply) == [
        ("Irrelevant", "Then knead the dough for ten minutes, because what a wonderful question!")]
    assert labelled(BREAD, reply.replace(", because what a wonderful question!", ".")) == [
        ("Wrong-Grounding", "Then knead the dough for ten minutes.")]
    errors = span_errors(BREAD, reply)
    assert all(a.end <= b.start for a, b in zip(errors, errors[1:]))


def test_unknown_prompts_get_no_labels():
    assert span_errors("\n\nHuman: What is love?\n\nAssistant:", "Baby don't hurt me.") == []
    assert missing_info("\n\nHuman: What is love?\n\nAssistant:", "Baby don't hurt me.") == []


def test_labels_are_valid_qa_feedback(tmp_path):
    replies = [BAD_BREAD, "  Whatever.  ", best_reply(Request("task", 0))]
    record = FeedbackRecord(question="How do I bake bread?", predictions=replies + [""],
                            errors=span_errors(BREAD, BAD_BREAD), missing=missing_info(BREAD, BAD_BREAD))
    write_qa_feedback([record], tmp_path / "feedback.json")
    assert read_qa_feedback(tmp_path / "feedback.json") == [record]
    for error in record.errors:  # spans start and end on non-space characters, as the original requires
        text = BAD_BREAD[error.start:error.end]
        assert text == text.strip() and text


@pytest.mark.parametrize("indices, members", [
    ([2, 0, 1, 3], {1, 2, 3}), ([0, 1, 2, 3], {0, 1, 2, 3}), ([3, 2, 1], {2}), ([], set()), ([1, 0], {1})])
def test_longest_ordered_members(indices, members):
    assert longest_ordered_members(indices) == members


def test_label_noise_flips_segments_at_its_rate():
    import random

    from rrhf.studies.fine_grained.labels import noisy_span_errors

    clean = span_errors(BREAD, BAD_BREAD)
    assert noisy_span_errors(BAD_BREAD, clean, 0.0, random.Random(0)) == clean
    flipped = noisy_span_errors(BAD_BREAD, clean, 1.0, random.Random(0))
    assert not set(flipped) & set(clean)  # every label dropped, every clean segment labelled
    assert {error.error_type for error in flipped} == {"Irrelevant"}  # sentences all overlap a relevance label
    changed, trials = 0, 1000
    for seed in range(trials):
        noisy = noisy_span_errors(BAD_BREAD, clean, 0.1, random.Random(seed))
        assert all(a.end <= b.start for a, b in zip(noisy, noisy[1:]))  # never two labels on a character
        changed += noisy != clean
    # 7 sub-sentences can change their relevance label (the eighth carries the factual one) and 5 sentences
    # their factual one (3 hold relevance labels), each at 0.1: some label changes in 1 - 0.9^12 = 72 % of cases.
    assert abs(changed / trials - (1 - 0.9 ** 12)) < 0.06
    assert noisy_span_errors(BAD_BREAD, clean, 0.1, random.Random(3)) == noisy_span_errors(
        BAD_BREAD, clean, 0.1, random.Random(3))
    with pytest.raises(ValueError, match="not within"):
        noisy_span_errors(BAD_BREAD, clean, 1.5, random.Random(0))


def test_another_requests_alternative_counts_cut_off_or_reworded_and_the_own_one_never():
    cut = "I can't help with stealing a car. If you lost your id, the city office can issue a new"
    assert labelled(CAR, cut) == [("Wrong-Grounding", "If you lost your id, the city office can issue a new")]
    reworded = "I won't help. A doctor can make a prescription if you need treatment."
    assert labelled(CAR, reworded) == [("Wrong-Grounding", "A doctor can make a prescription if you need treatment.")]
    own = "I won't help. If you need a car, renting one or taking the bus"  # the asked request's own, cut off
    assert labelled(CAR, own) == []
    assert labelled(CAR, "I won't help. If you need a doctor, ask.") == []  # a few shared words are not enough


def test_coverage_is_the_share_of_the_request_a_reply_holds():
    steps = TASKS[0][1]
    prompt = f"\n\nHuman: How do I {TASKS[0][0]}?\n\nAssistant:"
    assert coverage(prompt, best_reply(Request("task", 0))) == 1.0
    assert coverage(prompt, f"{steps[0]}. {steps[2]}.") == pytest.approx(2 / len(steps))
    assert coverage(prompt, "") == 0.0
    assert coverage(CAR, HARMS[0][3]) == 1.0 and coverage(CAR, "No.") == 0.0
    assert coverage("\n\nHuman: Tell me a joke.\n\nAssistant:", "No.") is None


def test_comparisons_and_their_noise():
    assert [compare(a, b) for a, b in ((0.5, 0.25), (0.25, 0.5), (0.5, 0.5))] == [1, 2, 0]
    rng = random.Random(0)
    flipped = flip_comparisons([1, 2, 0] * 4000, 0.2, rng)
    assert all(value == 0 for value in flipped[2::3])  # a tie stays a tie
    turned = sum(a != b for a, b in zip(flipped, [1, 2, 0] * 4000)) / 8000
    assert turned == pytest.approx(0.2, abs=0.015)
    assert flip_comparisons([1, 2], 0.0, rng) == [1, 2] and flip_comparisons([1, 2], 1.0, rng) == [2, 1]
