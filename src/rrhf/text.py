"""A reply's text: where a generated reply ends (the next turn), and its surface measures (words, distinct-n,
repetition).

Used by sampling, PPO and the reward monitor (replies are cut at the next turn, as evaluation cuts them), by
the gold reward (a penalty for repeats) and by evaluation (is a policy's text degenerating?). Words are
lower-cased runs of letters, digits and apostrophes, so punctuation and spacing do not matter.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[a-z0-9']+")


def words(text: str) -> list[str]:
    """The lower-cased words of ``text``: "Then, then THEN!" -> ["then", "then", "then"]."""
    return WORD.findall(text.lower())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """The ``len(tokens) - n + 1`` consecutive n-grams of ``tokens`` (none when it is shorter than n)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct n-grams / n-grams of the words of one text; 1.0 when it has no n-gram."""
    grams = ngrams(words(text), n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition(text: str, n: int = 3) -> float:
    """Share of the word n-grams of ``text`` that repeat an earlier n-gram of it (1 - distinct-n).

    0 for text without repeats; "then then then then" (n=3) gives 1/2. Three-word
    grams ignore the small repeats of ordinary prose ("the dough ... the dough")
    and catch loops and repeated sentences.
    """
    return 1.0 - distinct_n(text, n)


TURN_MARKER = re.compile(r"Human:|Assistant:")



def cut_at_turn(text: str) -> str:
    """The response up to the first "Human:" or "Assistant:" (where the model starts the next turn),
    stripped on the right."""
    match = TURN_MARKER.search(text)
    return (text[: match.start()] if match else text).rstrip()
