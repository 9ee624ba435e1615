"""Segments of a reply for fine-grained rewards (Wu et al., 2023): sentences and sub-sentences.

FineGrainedRLHF judges relevance, repetition and coherence per sub-sentence and factuality per sentence; each
segment's reward lands on the policy's last token of that segment. A segmentation is a list of character
boundaries ``[0, b1, ..., len(text)]``: segment i is ``text[b_i:b_{i+1}]``.

- Sentences end after ``.``, ``!`` or ``?`` (repeated, or followed by a closing quote or bracket) where
  whitespace or the end of the text follows. The original splits with spaCy; the tiny world's replies are
  plain enough for this rule, and the project does not depend on spaCy.
- Sub-sentences split a sentence after a word ending in ``,``, ``;``, ``!`` or ``?``, as the original does,
  and with its rules on length (``min_words`` = 5): no split leaves fewer than ``min_words`` + 1 words after
  it, and a sub-sentence shorter than ``min_words`` words is joined to the one before it (at the start of a
  sentence, to the one after it). Sub-sentence boundaries sit at the first character of a word.
"""

from __future__ import annotations

import bisect
import re

SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")
SUBSENTENCE_END = re.compile(r"[,;!?]$")
WORD = re.compile(r"\S+")
MIN_SUBSENTENCE_WORDS = 5
SEGMENT_MARKER = "</s>"


def sentence_boundaries(text: str) -> list[int]:
    """``[0, end of sentence 1, ..., len(text)]``; a sentence ends just after its final punctuation, and text
    after the last one (without final punctuation) is a sentence too. Empty (all-space) sentences are
    dropped; a blank text is one segment."""
    if not text.strip():
        return [0, len(text)]
    ends = [match.end() for match in SENTENCE_END.finditer(text)]
    if text[ends[-1] if ends else 0:].strip():
        ends.append(len(text))
    boundaries = [0]
    for end in ends:
        if text[boundaries[-1]:end].strip():
            boundaries.append(end)
    boundaries[-1] = len(text)  # trailing whitespace belongs to the last sentence
    return boundaries


def _subsentence_starts(words: list[str], min_words: int) -> list[bool]:
    """Whether each word of one sentence starts a sub-sentence (the original's rule, see the module)."""
    starts = [True] + [False] * (len(words) - 1)
    current = 0  # the word that starts the current sub-sentence
    for index in range(1, len(words)):
        if not SUBSENTENCE_END.search(words[index - 1]) or index + min_words >= len(words):
            continue
        if index - current >= min_words:
            starts[index], current = True, index
        elif current > 0:  # the current sub-sentence is too short: join it to the one before
            starts[current], starts[index], current = False, True, index
    return starts


def subsentence_boundaries(text: str, min_words: int = MIN_SUBSENTENCE_WORDS) -> list[int]:
    """``[0, start of sub-sentence 2, ..., len(text)]``: each sentence of :func:`sentence_boundaries` cut into
    sub-sentences, each starting at a word."""
    sentences = sentence_boundaries(text)
    boundaries: list[int] = []
    for start, end in zip(sentences, sentences[1:]):
        words = list(WORD.finditer(text, start, end))
        if not words:
            continue
        for word, is_start in zip(words, _subsentence_starts([w.group() for w in words], min_words)):
            if is_start:
                boundaries.append(word.start())
    if not boundaries:
        return [0, len(text)]
    boundaries[0] = 0
    return boundaries + [len(text)]


def segments(text: str, boundaries: list[int]) -> list[str]:
    """The segments' texts: ``text[b_i:b_{i+1}]``."""
    return [text[start:end] for start, end in zip(boundaries, boundaries[1:])]


def segment_spans(text: str, boundaries: list[int]) -> list[tuple[int, int]]:
    """(first, last + 1) non-space characters of each segment that is not blank: the span an annotator marks."""
    spans = []
    for start, end in zip(boundaries, boundaries[1:]):
        piece = text[start:end]
        if piece.strip():
            spans.append((start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())))
    return spans


def marked_input(question: str, segment_texts: list[str], marker: str = SEGMENT_MARKER) -> str:
    """The segment reward model's input, as the original writes it: ``question: Q answer: </s> seg1 </s> seg2
    ...``, one ``marker`` before each segment (its token is where the model classifies the segment)."""
    marked = " ".join(f"{marker} {text.strip()}" for text in segment_texts)
    return f"question: {question} answer: {marked}"


def segment_end_tokens(text: str, boundaries: list[int], token_offsets: list[tuple[int, int]]) -> list[int]:
    """For each segment, the index of the reply's token that ends it: the last token starting before the
    segment's last non-space character ends. ``token_offsets``: (start, end) characters of each reply token in
    ``text``, in order, as a fast tokenizer's ``offset_mapping`` gives them. A token that straddles a boundary
    ends the segment it starts in. Segments with no token of their own (possible only when one token spans two
    segments) share the previous segment's token; the original counts the tokens of each prefix instead, which
    can disagree with the tokens the policy actually generated at a boundary."""
    if not token_offsets:
        raise ValueError("a reply with no tokens has no segment ends")
    token_starts = [start for start, _ in token_offsets]
    last_characters = [start + len(text[start:end].rstrip()) for start, end in zip(boundaries, boundaries[1:])]
    return [max(bisect.bisect_left(token_starts, last) - 1, 0) for last in last_characters]
