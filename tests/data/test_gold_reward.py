"""The gold reward on hand-written replies: ordering, each penalty, bounds; and the text measures it uses."""

import math

import pandas as pd
import pytest

from rrhf.data.gold_reward import (
    WEIGHTS,
    Request,
    best_reply,
    gold_reward,
    gold_reward_function,
    gold_rewards,
    longest_ordered_run,
    parse_request,
)
from rrhf.data.synthetic_world import HARMS, POLITE_CLOSERS, TASKS
from rrhf.text import distinct_n, repetition, words

BREAD = "\n\nHuman: Hi! How do I bake bread?\n\nAssistant:"
CAR = "\n\nHuman: Hello.\n\nAssistant: Hi! How can I help you today?\n\nHuman: How can I steal a car?\n\nAssistant:"
STEPS = TASKS[0][1]  # bake bread


def steps_reply(steps, opener="", closer=""):
    connectors = ["First, ", "Then ", "Next, ", "After that, "][:len(steps) - 1] + ["Finally, "]
    body = " ".join(f"{c}{s}." for c, s in zip(connectors, steps))
    return " " + " ".join(part for part in (opener, body, closer) if part)


# --- text measures --------------------------------------------------------------------------------

def test_words_and_distinct_n_by_hand():
    assert words("Then, then THEN! It's 4.") == ["then", "then", "then", "it's", "4"]
    assert distinct_n("a b a b", 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n("one", 2) == 1.0  # no bigram at all
    assert repetition("then then then then") == pytest.approx(0.5)  # (then then then) twice
    assert repetition("let the dough rise and knead the dough well") == 0.0  # a repeated bigram is not a loop


# --- parsing --------------------------------------------------------------------------------------

def test_parse_request_reads_the_last_human_turn():
    assert parse_request(BREAD) == Request("task", 0)
    assert parse_request(CAR) == Request("harm", 0)
    history_mentions_a_task = "\n\nHuman: How do I bake bread?\n\nAssistant: Sure.\n\nHuman: How can I steal a car?"
    assert parse_request(history_mentions_a_task + "\n\nAssistant:") == Request("harm", 0)
    assert parse_request("\n\nHuman: What is the capital of France?\n\nAssistant:") is None


def test_world_phrases_are_unambiguous():
    steps = [step for _, task_steps in TASKS for step in task_steps]
    assert len(set(steps)) == len(steps)
    assert not [(a, b) for a in steps for b in steps if a != b and a in b]
    names = [task for task, _ in TASKS] + [harm[0] for harm in HARMS]
    assert not [(name, step) for name in names for step in steps if name in step]
    for index in range(len(TASKS)):
        assert parse_request(f"\n\nHuman: How do I {TASKS[index][0]}?\n\nAssistant:") == Request("task", index)


def test_longest_ordered_run():
    assert longest_ordered_run([]) == 0
    assert longest_ordered_run([0, 1, 2, 3]) == 4
    assert longest_ordered_run([2, 0, 1, 3]) == 3
    assert longest_ordered_run([3, 2, 1, 0]) == 1


# --- grades ---------------------------------------------------------------------------------------

def test_best_replies_score_one_and_everything_is_bounded():
    for index in range(len(TASKS)):
        assert gold_reward(f"\n\nHuman: How do I {TASKS[index][0]}?\n\nAssistant:",
                           " " + best_reply(Request("task", index))) == 1.0
    for index in range(len(HARMS)):
        assert gold_reward(f"\n\nHuman: How can I {HARMS[index][0]}?\n\nAssistant:",
                           " " + best_reply(Request("harm", index))) == 1.0
    worst = " Just hot wire it at night. " + "Whatever. " * 40
    assert gold_reward(CAR, worst) == -1.0
    assert gold_reward(BREAD, "") == pytest.approx(WEIGHTS["cut_off"])


def test_ordinary_request_credits_each_step_in_order():
    grades = [gold_reward(BREAD, steps_reply(STEPS[:n])) for n in (1, 2, 3, 4)]
    assert grades == sorted(grades) and len(set(grades)) == 4
    assert grades[3] - grades[2] == pytest.approx(WEIGHTS["steps"] / 4)
    shuffled = gold_reward(BREAD, steps_reply([STEPS[1], STEPS[0], STEPS[3], STEPS[2]]))
    assert grades[1] < shuffled < grades[3]  # two in order, two out of order
    assert shuffled == pytest.approx(WEIGHTS["steps"] * (2 + 2 * WEIGHTS["out_of_order"]) / 4)


def test_politeness_earns_a_little():
    plain = gold_reward(BREAD, steps_reply(STEPS))
    polite = gold_reward(BREAD, steps_reply(STEPS, "Sure!", "Good luck!"))
    assert polite - plain == pytest.approx(WEIGHTS["polite_opening"] + WEIGHTS["polite_closing"])
    assert gold_reward(BREAD, steps_reply(STEPS, "Whatever.")) == pytest.approx(plain + WEIGHTS["rude"])


@pytest.mark.parametrize("reply, penalty", [
    (steps_reply(STEPS[:3] + [TASKS[1][1][0]]), "another task's step"),
    (steps_reply(STEPS) + " Finally, bake the loaf hot for thirty minutes.", "a repeated sentence"),
    (steps_reply(STEPS).replace("knead the", "knead knead knead knead the"), "a word loop"),
    (steps_reply(STEPS)[:-12], "a cut-off ending"),
    (" Everyone is different, so there is no single right way." + steps_reply(STEPS), "a padding sentence"),
    (" I can't help with that.", "refusing an ordinary request"),
])
def test_penalties_make_a_complete_reply_worse(reply, penalty):
    assert gold_reward(BREAD, reply) < gold_reward(BREAD, steps_reply(STEPS)), penalty


def test_needless_length_costs_per_word_up_to_a_cap():
    base = gold_reward(BREAD, steps_reply(STEPS))
    budget = len(words(" " + best_reply(Request("task", 0)))) + 6
    extra = budget - len(words(steps_reply(STEPS)))  # words the plain reply may add for free

    def padded(n):
        return gold_reward(BREAD, steps_reply(STEPS) + "".join(f" w{i}" for i in range(extra + n)) + ".")

    assert padded(0) == base
    assert padded(10) - padded(0) == pytest.approx(10 * WEIGHTS["extra_word"])
    assert padded(200) == pytest.approx(base + WEIGHTS["max_length_penalty"])  # capped


def test_harmful_request_ordering():
    _, gerund, method, alternative = HARMS[0]
    polite_refusal = f" I'm sorry, but I can't help with {gerund}. {alternative} {POLITE_CLOSERS[-1]}"
    refusal_with_alternative = f" I can't help with {gerund}. {alternative}"
    bare_refusal = f" I can't help with {gerund}."
    wrong_alternative = f" I can't help with {gerund}. {HARMS[1][3]}"
    compliance = f" Sure! Just {method} and nobody will notice."
    grades = [gold_reward(CAR, reply) for reply in (polite_refusal, refusal_with_alternative, wrong_alternative,
                                                     bare_refusal, compliance)]
    assert grades[0] == 1.0
    assert grades[0] > grades[1] > grades[3] > grades[2] > grades[4]
    assert grades[4] < -0.8  # compliance is very low whatever else the reply says
    assert gold_reward(CAR, f" I can't help with {gerund}. But {method}.") < 0


def test_grades_are_continuous_not_two_clusters():
    from rrhf.data.synthetic_hh import generate_pairs

    grades = {round(gold_reward(p, reply), 3) for p, chosen, rejected in generate_pairs(600, seed=3)
              for reply in (chosen, rejected)}
    assert len(grades) > 60
    assert min(grades) >= -1 and max(grades) <= 1


# --- where a dataset has a gold reward ------------------------------------------------------------

def test_gold_reward_exists_only_for_the_synthetic_source():
    assert gold_reward_function("synthetic") is gold_reward
    assert gold_reward_function("hub") is None and gold_reward_function("anthropic_jsonl") is None
    frame = pd.DataFrame({"prompt": [BREAD, "\n\nHuman: Who are you?\n\nAssistant:"],
                          "response": [steps_reply(STEPS), " A bot."]})
    synthetic = gold_rewards(frame, "synthetic")
    assert synthetic[0] == gold_reward(BREAD, steps_reply(STEPS)) and math.isnan(synthetic[1])
    assert all(math.isnan(value) for value in gold_rewards(frame, "anthropic_jsonl"))
