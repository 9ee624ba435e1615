"""Simulated annotators: who labels the synthetic preference pairs, with the biases human raters have.

An annotator's utility for a reply is its gold grade plus systematic biases that
gold does not share (:class:`AnnotatorBias`): a taste for enthusiastic, flattering
sentences and for length, the known leanings of human raters. A pair's label is
drawn by Bradley-Terry on the two utilities, P(a preferred) = sigmoid(beta * (u_a -
u_b)), with beta set so that a configured share of labels (``label_noise``)
contradicts the annotators' own utility. With both biases 0 the labels are
unbiased: noisy, but centred on gold.

The reward model learns from these labels only, so it inherits the biases: a
policy that optimises it can raise the proxy reward by flattering, while gold,
the judge, falls.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any, Iterable

from rrhf.data.synthetic_world import ENTHUSIASM
from rrhf.text import words


@dataclass(frozen=True)
class AnnotatorBias:
    """What the annotators like beyond gold: ``enthusiasm`` per enthusiastic sentence of a reply (counted once
    each, :data:`rrhf.data.synthetic_world.ENTHUSIASM`) and ``length`` per word."""

    enthusiasm: float = 0.0
    length: float = 0.0

    @classmethod
    def coerce(cls, value: "AnnotatorBias | dict[str, Any] | None") -> "AnnotatorBias":
        """The bias of a config block (``datasets.NAME.annotator_bias``); None means unbiased."""
        if value is None or isinstance(value, cls):
            return value or cls()
        unknown = set(value) - {field.name for field in fields(cls)}
        if unknown:
            raise ValueError(f"annotator_bias: unknown key(s) {sorted(unknown)}; known: enthusiasm, length")
        return cls(**value)

    def of(self, reply: str) -> float:
        """The bias term of ``reply``: enthusiasm * (enthusiastic sentences in it) + length * (its words)."""
        text = reply.lower()
        enthusiastic = sum(sentence.lower().rstrip("!.") in text for sentence in ENTHUSIASM)
        return self.enthusiasm * enthusiastic + self.length * len(words(reply))


def preference_scale(gaps: Iterable[float], label_noise: float) -> float:
    """beta such that the mean over pairs of sigmoid(-beta * gap) equals ``label_noise`` (inf for 0).

    ``gaps`` are the pairs' absolute utility differences; found by bisection on log beta.
    """
    gaps = list(gaps)
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), not {label_noise}")
    if label_noise == 0:
        return math.inf

    def noise(beta: float) -> float:
        return sum(1 / (1 + math.exp(min(700.0, beta * gap))) for gap in gaps) / len(gaps)

    low, high = -10.0, 10.0  # log beta
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if noise(math.exp(middle)) > label_noise else (low, middle)
    return math.exp((low + high) / 2)


def prefer_first_probability(first_utility: float, second_utility: float, beta: float) -> float:
    """Bradley-Terry probability that an annotator prefers the first reply (a tie at beta inf: 0)."""
    if math.isinf(beta):
        return float(first_utility > second_utility)
    return 1 / (1 + math.exp(-max(-700.0, min(700.0, beta * (first_utility - second_utility)))))


def label_pairs(pairs: list[tuple[str, str, str, float, float]], label_noise: float, bias: AnnotatorBias,
                rng: random.Random) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) of each (prompt, first, second, first gold, second gold), in order.

    Each annotator's utility is gold + ``bias.of(reply)``; the label is drawn by Bradley-Terry at the scale
    that makes ``label_noise`` of the labels contradict that utility on average (one draw of ``rng`` per
    pair).
    """
    utilities = [(first_gold + bias.of(first), second_gold + bias.of(second))
                 for _, first, second, first_gold, second_gold in pairs]
    beta = preference_scale([abs(a - b) for a, b in utilities], label_noise)
    labelled = []
    for (prompt, first, second, _, _), (first_utility, second_utility) in zip(pairs, utilities):
        prefer_first = rng.random() < prefer_first_probability(first_utility, second_utility, beta)
        labelled.append((prompt, first, second) if prefer_first else (prompt, second, first))
    return labelled
