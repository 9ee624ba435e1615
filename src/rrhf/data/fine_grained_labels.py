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

Spans cover a segment from its first to its last non-space character. These are clean labels; noisy
annotators come on top of them.
"""

from __future__ import annotations

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
