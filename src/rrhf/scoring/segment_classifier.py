"""What FineGrainedRLHF's segment reward models read and say (Wu et al., 2023): a reply's segments of each kind,
their labels from span errors, the marked input, and the models' error probability per segment.

``relevance`` (R1) judges sub-sentences and ``factuality`` (R2) sentences (:mod:`rrhf.data.segments`). A marker
token goes beside each segment and the model classifies the segment at its marker: error (1) or not (0). The
original puts it before each segment for a bidirectional encoder (Longformer); a causal backbone reads left to
right and must have seen the segment when it reaches the marker, so there it goes after (``position``). As in
the original, the factuality model skips sentences that hold a relevance error (their label is ignored).
"""

from __future__ import annotations

import torch

from rrhf.data.qa_feedback import FACTUAL_ERROR_TYPES, SpanError
from rrhf.data.segments import segment_spans, sentence_boundaries, subsentence_boundaries
from rrhf.models.token_spans import sequence_start, start_and_cut
from rrhf.padding import pad_batch

RELEVANCE_ERROR_TYPES = ("Irrelevant", "Redundant", "Incoherent")
IGNORE = -100  # a segment whose label takes no part (cross-entropy's ignore_index)
# kind -> (segmentation, the error types it detects, the error types whose segments it ignores)
SEGMENT_KINDS = {"relevance": (subsentence_boundaries, RELEVANCE_ERROR_TYPES, ()),
                 "factuality": (sentence_boundaries, FACTUAL_ERROR_TYPES, RELEVANCE_ERROR_TYPES)}


def reply_segments(reply: str, kind: str) -> list[tuple[int, int]]:
    """(start, end) characters of each non-blank segment of ``reply`` that reward model ``kind`` judges."""
    return segment_spans(reply, SEGMENT_KINDS[kind][0](reply))


def segment_labels(reply: str, errors: list[SpanError], kind: str) -> tuple[list[tuple[int, int]], list[int]]:
    """(segments, labels) of a reply for reward model ``kind``: 1 where a segment overlaps an error of its
    kind, :data:`IGNORE` where it overlaps one of the kinds it skips, else 0."""
    _, detected, ignored = SEGMENT_KINDS[kind]
    spans, labels = reply_segments(reply, kind), []
    for start, end in spans:
        overlapping = {e.error_type for e in errors if e.start < end and start < e.end}
        labels.append(1 if overlapping & set(detected) else IGNORE if overlapping & set(ignored) else 0)
    return spans, labels


def marker_token(tokenizer) -> int:
    """The token placed beside each segment: the tokenizer's separator, else its EOS (Longformer's ``</s>``)."""
    token = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError("the segment reward model's tokenizer has neither a separator nor an EOS token to mark "
                         "segments with")
    return token


def encode_marked(tokenizer, prompt: str, reply: str, spans: list[tuple[int, int]], position: str,
                  max_length: int) -> tuple[list[int], list[int]]:
    """(token ids, marker positions): the tokenizer's start (an encoder's ``<s>``,
    :func:`rrhf.models.token_spans.sequence_start`) and the prompt, then each segment ``reply[start:end]`` (after a
    space) with the marker token before or after it (``position``). The prompt loses tokens from the left (after
    the start) to fit ``max_length``; segments that still do not fit are left out, so there may be fewer markers
    than spans."""
    marker, first = marker_token(tokenizer), sequence_start(tokenizer)
    pieces = []
    for start, end in spans:
        text = tokenizer(" " + reply[start:end], add_special_tokens=False)["input_ids"]
        pieces.append([marker, *text] if position == "before" else [*text, marker])
    reply_ids: list[int] = []
    for piece in pieces:
        if len(first) + len(reply_ids) + len(piece) > max_length - 1:
            break
        reply_ids += piece
    prompt_ids = start_and_cut(tokenizer, tokenizer(prompt, add_special_tokens=False)["input_ids"],
                               max_length - len(reply_ids))
    ids = prompt_ids + reply_ids
    return ids, [index for index, token in enumerate(ids) if token == marker and index >= len(prompt_ids)]


@torch.no_grad()
def segment_error_probabilities(model, tokenizer, prompts: list[str], replies: list[str], kind: str,
                                position: str, max_length: int, batch_size: int = 32) -> list[list[float]]:
    """Per reply, the probability that each of its segments (:func:`reply_segments`) holds an error of
    ``kind``; a segment cut off by ``max_length`` gets 0 (no evidence against it)."""
    device = next(model.parameters()).device
    spans = [reply_segments(reply, kind) for reply in replies]
    encoded = [encode_marked(tokenizer, p, r, segments, position, max_length)
               for p, r, segments in zip(prompts, replies, spans)]
    result: list[list[float]] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        input_ids, attention_mask = pad_batch([ids for ids, _ in chunk], tokenizer.pad_token_id)
        logits = model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits.float()
        errors = logits.softmax(-1)[..., 1].cpu()
        for row, ((_, positions), segments) in enumerate(zip(chunk, spans[start:start + batch_size])):
            found = errors[row, positions].tolist()
            result.append(found + [0.0] * (len(segments) - len(found)))
    return result
