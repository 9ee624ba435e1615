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

from rrhf.data.gold_reward import PADDING_PHRASES, Request, longest_ordered_members, parse_request, steps_found
from rrhf.data.qa_feedback import MissingInfo, SpanError
from rrhf.data.segments import segment_spans, sentence_boundaries, subsentence_boundaries
from rrhf.data.synthetic_world import HARMS, TASKS
from rrhf.text import repetition, words

PADDING = [phrase.lower() for phrase in PADDING_PHRASES]
METHODS = [harm[2].lower() for harm in HARMS]
ALTERNATIVE_MATCH = 0.6  # share of an alternative's words a sentence must hold to give that alternative


def _overlaps(span: tuple[int, int], errors: list[SpanError]) -> bool:
    return any(error.start < span[1] and span[0] < error.end for error in errors)


def _out_of_order_steps(text: str, request: Request) -> list[str]:
    """The asked task's steps that appear in lower-cased ``text`` but outside its longest ordered run."""
    steps = TASKS[request.index][1]
    found = steps_found(text, steps)
    keep = longest_ordered_members([index for _, index in found])
    return [steps[index].lower() for position, (_, index) in enumerate(found) if position not in keep]


def _foreign_steps(request: Request) -> list[str]:
    """The steps of every task but the asked one (all of them for a harmful request), lower-cased."""
    return [step.lower() for index, (_, steps) in enumerate(TASKS)
            if request.kind == "harm" or index != request.index for step in steps]


def _wrong_content(request: Request, text: str) -> list[str]:
    """Lower-cased phrases that make a sentence the factual-error analogue: harmful methods, and the asked
    task's out-of-order steps in ``text`` (another request's alternative: :func:`_foreign_alternative`)."""
    if request.kind == "harm":
        return METHODS
    return METHODS + _out_of_order_steps(text.lower(), request)


def _foreign_alternative(request: Request, sentence: str) -> bool:
    """Whether a harmful request's reply ``sentence`` gives a safe alternative meant for another request: the
    alternative whose words it holds the largest share of (at least :data:`ALTERNATIVE_MATCH`) is not the asked
    request's. A paraphrase or a cut-off alternative counts, as an annotator would count it."""
    if request.kind != "harm":
        return False
    held = set(words(sentence))
    shares = [len(held & set(words(harm[3]))) / len(set(words(harm[3]))) for harm in HARMS]
    best = max(range(len(HARMS)), key=shares.__getitem__)
    return shares[best] >= ALTERNATIVE_MATCH and best != request.index


def span_errors(prompt: str, reply: str) -> list[SpanError]:
    """The reply's error spans (see the module), in order of their start; [] for a prompt the world does not
    know."""
    request = parse_request(prompt)
    if request is None:
        return []
    irrelevant = PADDING + _foreign_steps(request)
    errors: list[SpanError] = []
    earlier: list[str] = []
    for span in segment_spans(reply, subsentence_boundaries(reply)):
        segment = reply[span[0]:span[1]]
        normalised = " ".join(words(segment))
        if normalised in earlier or repetition(segment) > 0:
            errors.append(SpanError("Redundant", *span))
        elif any(phrase in segment.lower() for phrase in irrelevant):
            errors.append(SpanError("Irrelevant", *span))
        earlier.append(normalised)
    wrong = _wrong_content(request, reply)
    for span in segment_spans(reply, sentence_boundaries(reply)):
        sentence = reply[span[0]:span[1]]
        if not _overlaps(span, errors) and (any(phrase in sentence.lower() for phrase in wrong)
                                            or _foreign_alternative(request, sentence)):
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
        free = not _overlaps(span, taken + flipped)
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
    labelled = {(error.start, error.end): error for error in errors}
    relevance = _flip(segment_spans(reply, subsentence_boundaries(reply)), labelled, ("Irrelevant", "Redundant"),
                      "Irrelevant", rate, rng, [])
    factual = _flip(segment_spans(reply, sentence_boundaries(reply)), labelled, ("Wrong-Grounding",),
                    "Wrong-Grounding", rate, rng, relevance)
    return sorted(relevance + factual, key=lambda error: error.start)


def coverage(prompt: str, reply: str) -> float | None:
    """The share of what the asked request needs that the reply holds: its task's steps, or a harmful request's
    safe alternative (1 or 0); None for a prompt the world does not know. The analogue of the original's
    coverage of the corrected answer's information (create_comp_rm_files.py)."""
    request = parse_request(prompt)
    if request is None:
        return None
    needed = 1 if request.kind == "harm" else len(TASKS[request.index][1])
    return 1 - len(missing_info(prompt, reply)) / needed


def compare(first: float, second: float) -> int:
    """A qa-feedback comparison of two scores: 1 when the first is higher, 2 when the second is, 0 on a tie."""
    return 1 if first > second else 2 if second > first else 0


def flip_comparisons(comparisons: list[int], rate: float, rng: random.Random) -> list[int]:
    """Each non-tied comparison (1 or 2) turned round with probability ``rate``; ties (0) stay."""
    return [(3 - value if rng.random() < rate else value) if value else value for value in comparisons]
