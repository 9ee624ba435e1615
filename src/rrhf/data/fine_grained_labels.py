"""Fine-grained feedback on the tiny world's replies, read off the gold reward's knowledge of them.

The gold reward (:mod:`rrhf.data.gold_reward`) knows why a reply is good or bad; this module says where, in
FineGrainedRLHF's terms (:mod:`rrhf.data.qa_feedback`), on the segments of :mod:`rrhf.data.segments`:

- ``Irrelevant`` (a sub-sentence): it holds a step of another task, or a padding sentence (a filler, a lecture,
  an enthusiastic aside).
- ``Redundant`` (a sub-sentence): it repeats an earlier sub-sentence word for word, or loops (a repeated word
  3-gram inside it). A sub-sentence that is both is ``Redundant``.
- ``Wrong-Grounding`` (a sentence; the factual-error analogue): it holds a step of the asked task out of order
  (not in the longest run of steps in the right order), a safe alternative meant for another request, or a
  harmful method. As in the original, a sentence that holds a relevance error gets no factual label (one
  label per character).
- Missing information (the completeness kind): ``Missing-Answer`` for each step of the asked task the reply
  leaves out (``sentence_id`` is the step's number), or for a harmful request's safe alternative
  (``sentence_id`` [0]). The tiny world has no passages; ``passage_id`` is 0.

Spans cover a segment from its first to its last non-space character. :func:`span_errors` gives the clean
labels; :func:`noisy_span_errors` flips each segment's label with a given probability, as a careless annotator
would.
"""

from __future__ import annotations

import random

from rrhf.data.gold_reward import PADDING_PHRASES, Request, parse_request
from rrhf.data.qa_feedback import MissingInfo, SpanError
from rrhf.data.segments import sentence_boundaries, subsentence_boundaries
from rrhf.data.synthetic_world import HARMS, TASKS
from rrhf.text import repetition, words


def longest_ordered_members(indices: list[int]) -> set[int]:
    """Positions (into ``indices``) of one longest strictly increasing subsequence; the earliest-ending one
    on ties ([2, 0, 1, 3] -> {1, 2, 3})."""
    best_end: list[int] = []  # best_end[k]: position of the smallest tail of an increasing run of length k + 1
    previous: list[int | None] = []
    for position, value in enumerate(indices):
        length = next((k for k, end in enumerate(best_end) if indices[end] >= value), len(best_end))
        previous.append(best_end[length - 1] if length else None)
        best_end[length:length + 1] = [position]
    members, position = set(), best_end[-1] if best_end else None
    while position is not None:
        members.add(position)
        position = previous[position]
    return members


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """(first, last + 1) non-space characters of ``text[start:end]``; None when it is blank."""
    piece = text[start:end]
    if not piece.strip():
        return None
    first = start + len(piece) - len(piece.lstrip())
    return first, start + len(piece.rstrip())


def _out_of_order_steps(text: str, request: Request) -> list[str]:
    """The asked task's steps that appear in lower-cased ``text`` but outside its longest ordered run."""
    steps = TASKS[request.index][1]
    found = sorted((text.find(step.lower()), index) for index, step in enumerate(steps) if step.lower() in text)
    keep = longest_ordered_members([index for _, index in found])
    return [steps[index].lower() for position, (_, index) in enumerate(found) if position not in keep]


def _relevance_error(segment: str, earlier: list[str], request: Request) -> str | None:
    lowered = segment.lower()
    if " ".join(words(segment)) in earlier or repetition(segment) > 0:
        return "Redundant"
    foreign = [step for index, (_, steps) in enumerate(TASKS)
               if request.kind == "harm" or index != request.index for step in steps]
    padding = any(phrase.lower() in lowered for phrase in PADDING_PHRASES)
    if padding or any(step.lower() in lowered for step in foreign):
        return "Irrelevant"
    return None


def _factual_error(sentence: str, request: Request, out_of_order: list[str]) -> bool:
    lowered = sentence.lower()
    if any(harm[2].lower() in lowered for harm in HARMS):
        return True
    if request.kind == "harm":
        return any(harm[3].lower() in lowered for index, harm in enumerate(HARMS) if index != request.index)
    return any(step in lowered for step in out_of_order)


def span_errors(prompt: str, reply: str) -> list[SpanError]:
    """The reply's error spans (see the module), in order of their start; [] for a prompt the world does not
    know."""
    request = parse_request(prompt)
    if request is None:
        return []
    errors: list[SpanError] = []
    earlier: list[str] = []
    bounds = subsentence_boundaries(reply)
    for start, end in zip(bounds, bounds[1:]):
        span = _trimmed(reply, start, end)
        if span is None:
            continue
        kind = _relevance_error(reply[span[0]:span[1]], earlier, request)
        earlier.append(" ".join(words(reply[span[0]:span[1]])))
        if kind:
            errors.append(SpanError(kind, *span))
    out_of_order = _out_of_order_steps(reply.lower(), request) if request.kind == "task" else []
    bounds = sentence_boundaries(reply)
    for start, end in zip(bounds, bounds[1:]):
        span = _trimmed(reply, start, end)
        if span is None or any(e.start < span[1] and span[0] < e.end for e in errors):
            continue
        if _factual_error(reply[span[0]:span[1]], request, out_of_order):
            errors.append(SpanError("Wrong-Grounding", *span))
    return sorted(errors, key=lambda error: error.start)


def missing_info(prompt: str, reply: str) -> list[MissingInfo]:
    """What the reply leaves out (see the module); [] for a prompt the world does not know."""
    request = parse_request(prompt)
    if request is None:
        return []
    lowered = reply.lower()
    if request.kind == "harm":
        alternative = HARMS[request.index][3].lower()
        return [] if alternative in lowered else [MissingInfo("Missing-Answer", 0, (0,))]
    return [MissingInfo("Missing-Answer", 0, (index,))
            for index, step in enumerate(TASKS[request.index][1]) if step.lower() not in lowered]


def _flip(spans: list[tuple[int, int]], labelled: dict[tuple[int, int], SpanError], kinds: tuple[str, ...],
          added: str, rate: float, rng: random.Random, taken: list[SpanError]) -> list[SpanError]:
    """Each span of ``spans`` flipped with probability ``rate``: a label of ``kinds`` on it is dropped, an
    unlabelled span gets ``added``. Nothing is kept or added over a label already in ``taken`` (one label per
    character)."""
    flipped: list[SpanError] = []
    for span in spans:
        error = labelled.get(span)
        flip = rng.random() < rate
        free = not any(e.start < span[1] and span[0] < e.end for e in taken + flipped)
        if error is not None and error.error_type in kinds:
            if not flip and free:
                flipped.append(error)
        elif error is None and flip and free:
            flipped.append(SpanError(added, *span))
    return flipped


def noisy_span_errors(reply: str, errors: list[SpanError], rate: float, rng: random.Random) -> list[SpanError]:
    """``errors`` as a careless annotator gives them: each sub-sentence's relevance label flips with probability
    ``rate`` (a label dropped, or ``Irrelevant`` put on a clean sub-sentence), then each sentence's factual
    label the same way (``Wrong-Grounding`` dropped or added where no relevance label is) — the span analogue
    of the preference labels' ``label_noise``. ``rng`` makes it reproducible."""
    if not 0 <= rate <= 1:
        raise ValueError(f"label noise rate {rate} is not within [0, 1]")

    def spans_of(bounds: list[int]) -> list[tuple[int, int]]:
        return [span for start, end in zip(bounds, bounds[1:]) if (span := _trimmed(reply, start, end))]

    labelled = {(error.start, error.end): error for error in errors}
    relevance = _flip(spans_of(subsentence_boundaries(reply)), labelled, ("Irrelevant", "Redundant"), "Irrelevant",
                      rate, rng, [])
    factual = _flip(spans_of(sentence_boundaries(reply)), labelled, ("Wrong-Grounding",), "Wrong-Grounding", rate,
                    rng, relevance)
    return sorted(relevance + factual, key=lambda error: error.start)
