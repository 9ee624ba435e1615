"""Fine-grained human feedback in the layout of FineGrainedRLHF's qa-feedback data (Wu et al., 2023).

One file is a JSON list of records, one per question::

    {"question": str,
     "passages": [[title, sentence, sentence, ...], ...],
     "gold": str,                                   # a reference answer (ROUGE)
     "prediction 1": str, ..., "prediction 4": str,  # the initial policy's sampled replies
     "feedback": {                                  # about "prediction 1" only
         "errors": [{"error type": str, "explanation": str, "start": int, "end": int}, ...],
         "missing-info": [{"error type": str, "passage_id": int, "sentence_id": [int, ...]}, ...],
         "corrected-prediction": str},
     "preference": [int] * 6}                       # 1vs2, 1vs3, 1vs4, 2vs3, 2vs4, 3vs4

``start`` and ``end`` are character offsets into "prediction 1" (end exclusive). In ``preference`` 1 means the
pair's first reply is preferred, 2 the second, 0 neither. Error types: ``Irrelevant``, ``Redundant`` and
``Incoherent`` (the relevance reward model's kind), ``Wrong-Grounding`` ("inconsistent fact") and
``Unverifiable`` (the factuality reward model's kind); missing information is ``Missing-Answer``,
``Missing-Major-Auxiliary`` or ``Missing-Minor-Auxiliary`` (the completeness kind). The tiny world writes its
segment labels in this layout too, so one loader reads both.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from rrhf.io import atomic_path, read_json

ERROR_TYPES = ("Irrelevant", "Redundant", "Incoherent", "Wrong-Grounding", "Unverifiable")
FACTUAL_ERROR_TYPES = ("Wrong-Grounding", "Unverifiable")
MISSING_TYPES = ("Missing-Answer", "Missing-Major-Auxiliary", "Missing-Minor-Auxiliary")
# The six comparisons of ``preference``, in the file's order, as 1-based prediction numbers.
PREFERENCE_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
PREDICTIONS = 4


@dataclass(frozen=True)
class SpanError:
    """An annotated error: characters ``start:end`` of prediction 1 are of ``error_type``."""

    error_type: str
    start: int
    end: int
    explanation: str = ""


@dataclass(frozen=True)
class MissingInfo:
    """Information prediction 1 left out, found in sentences ``sentence_ids`` of passage ``passage_id``."""

    error_type: str
    passage_id: int
    sentence_ids: tuple[int, ...]


@dataclass
class FeedbackRecord:
    """One question with its four replies, the fine-grained feedback on the first and the six preferences."""

    question: str
    predictions: list[str]
    passages: list[list[str]] = field(default_factory=list)
    gold: str = ""
    errors: list[SpanError] = field(default_factory=list)
    missing: list[MissingInfo] = field(default_factory=list)
    corrected: str = ""
    preference: list[int] = field(default_factory=lambda: [0] * len(PREFERENCE_PAIRS))

    def as_json(self) -> dict[str, Any]:
        """The record in the qa-feedback layout (the original's key order)."""
        record: dict[str, Any] = {"question": self.question, "passages": self.passages, "gold": self.gold}
        record.update({f"prediction {number}": text for number, text in enumerate(self.predictions, start=1)})
        record["feedback"] = {
            "errors": [{"error type": e.error_type, "explanation": e.explanation, "start": e.start, "end": e.end}
                       for e in self.errors],
            "missing-info": [{"error type": m.error_type, "passage_id": m.passage_id,
                              "sentence_id": list(m.sentence_ids)} for m in self.missing],
            "corrected-prediction": self.corrected}
        record["preference"] = list(self.preference)
        return record


def _field(raw: dict, key: str, kind: type, where: str):
    if key not in raw:
        raise ValueError(f"{where}: missing field {key!r}")
    value = raw[key]
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{where}: field {key!r} should be {kind.__name__}, not {type(value).__name__}")
    return value


def _span_error(raw: dict, text: str, where: str) -> SpanError:
    error_type = _field(raw, "error type", str, where)
    if error_type not in ERROR_TYPES:
        raise ValueError(f"{where}: unknown error type {error_type!r}; expected one of {list(ERROR_TYPES)}")
    start, end = _field(raw, "start", int, where), _field(raw, "end", int, where)
    if not 0 <= start < end <= len(text):
        raise ValueError(f"{where}: span {start}:{end} is not within prediction 1 ({len(text)} characters)")
    return SpanError(error_type, start, end, str(raw.get("explanation", "")))


def _missing_info(raw: dict, where: str) -> MissingInfo:
    error_type = _field(raw, "error type", str, where)
    if error_type not in MISSING_TYPES:
        raise ValueError(f"{where}: unknown missing-info type {error_type!r}; expected one of {list(MISSING_TYPES)}")
    sentence_ids = _field(raw, "sentence_id", list, where)
    return MissingInfo(error_type, _field(raw, "passage_id", int, where), tuple(int(i) for i in sentence_ids))


def parse_record(raw: Any, where: str) -> FeedbackRecord:
    """A :class:`FeedbackRecord` from one JSON record; errors name ``where`` (file and record) and the field."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: a record is a JSON object, not {type(raw).__name__}")
    predictions = [_field(raw, f"prediction {number}", str, where) for number in range(1, PREDICTIONS + 1)]
    feedback = raw.get("feedback", {}) or {}
    if not isinstance(feedback, dict):
        raise ValueError(f"{where}: field 'feedback' should be an object")
    errors = [_span_error(error, predictions[0], f"{where} feedback.errors[{index}]")
              for index, error in enumerate(feedback.get("errors", []))]
    missing = [_missing_info(info, f"{where} feedback.missing-info[{index}]")
               for index, info in enumerate(feedback.get("missing-info", []))]
    preference = raw.get("preference", [0] * len(PREFERENCE_PAIRS))
    if (not isinstance(preference, list) or len(preference) != len(PREFERENCE_PAIRS)
            or any(value not in (0, 1, 2) or isinstance(value, bool) for value in preference)):
        raise ValueError(f"{where}: field 'preference' should be {len(PREFERENCE_PAIRS)} values of 0, 1 or 2 "
                         f"(1vs2, 1vs3, 1vs4, 2vs3, 2vs4, 3vs4), not {preference!r}")
    return FeedbackRecord(question=_field(raw, "question", str, where), predictions=predictions,
                          passages=raw.get("passages", []), gold=str(raw.get("gold", "")), errors=errors,
                          missing=missing, corrected=str(feedback.get("corrected-prediction", "")),
                          preference=list(preference))


def read_qa_feedback(path: str | os.PathLike) -> list[FeedbackRecord]:
    """The records of a qa-feedback JSON file; an error names the file, the record and the field."""
    document = read_json(path)
    if not isinstance(document, list):
        raise ValueError(f"{path}: a qa-feedback file is a JSON list of records, not {type(document).__name__}")
    return [parse_record(raw, f"{path} record {index}") for index, raw in enumerate(document)]


def write_qa_feedback(records: list[FeedbackRecord], path: str | os.PathLike) -> None:
    """Write ``records`` in the qa-feedback layout, atomically (written aside, then renamed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps([record.as_json() for record in records], indent=2) + "\n")


def preference_pairs(record: FeedbackRecord) -> list[tuple[int, int]]:
    """(preferred, other) 1-based prediction numbers of each comparison with a preference (0 is skipped)."""
    return [(first, second) if choice == 1 else (second, first)
            for (first, second), choice in zip(PREFERENCE_PAIRS, record.preference) if choice]


def feedback_frames(records: list[FeedbackRecord]) -> dict[str, pd.DataFrame]:
    """The records as three tables, joined on ``record`` (the record's index) and ``prediction`` (1 to 4):

    - ``replies``: record, prediction, prompt (the question), reply;
    - ``spans``: record, prediction (always 1), start, end, error_type, text (the span's characters);
    - ``preferences``: record, prompt, chosen, rejected (the replies' texts), chosen_prediction,
      rejected_prediction.
    """
    replies = [(index, number, record.question, text) for index, record in enumerate(records)
               for number, text in enumerate(record.predictions, start=1)]
    spans = [(index, 1, error.start, error.end, error.error_type, record.predictions[0][error.start:error.end])
             for index, record in enumerate(records) for error in record.errors]
    preferences = [(index, record.question, record.predictions[chosen - 1], record.predictions[rejected - 1],
                    chosen, rejected)
                   for index, record in enumerate(records) for chosen, rejected in preference_pairs(record)]
    return {
        "replies": pd.DataFrame(replies, columns=["record", "prediction", "prompt", "reply"]),
        "spans": pd.DataFrame(spans, columns=["record", "prediction", "start", "end", "error_type", "text"]),
        "preferences": pd.DataFrame(preferences, columns=["record", "prompt", "chosen", "rejected",
                                                          "chosen_prediction", "rejected_prediction"]),
    }
