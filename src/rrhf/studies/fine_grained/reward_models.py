"""FineGrainedRLHF's reward models (Wu et al., 2023): one per kind of error, trained on fine-grained feedback.

- ``relevance`` (R1) and ``factuality`` (R2) are token classifiers of the segments of a reply, each at a marker
  token beside its segment (:mod:`rrhf.scoring.segment_classifier` says what they read and how).
- ``completeness`` (R3) is a pairwise (Bradley-Terry) preference model on the comparisons of the replies'
  completeness; the mean and std of its scores on the training replies are saved (``metrics.json``), as the
  original's config records them to normalise its reward.

Held-out metrics are per segment against the clean labels (what the world knows, before annotator noise) where
the world knows the prompt, else against the file's labels: accuracy, the error class's precision, recall and
F1, and the macro F1 of the two classes.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import torch
from accelerate.utils import set_seed
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from rrhf.config.blocks import Precision
from rrhf.data.gold_reward import parse_request
from rrhf.data.qa_feedback import (
    PREFERENCE_PAIRS,
    FeedbackRecord,
    SpanError,
    preference_pairs,
    read_qa_feedback,
)
from rrhf.io import start_job
from rrhf.losses import segment_classification_loss
from rrhf.models.loading import load_for_training, load_tokenizer
from rrhf.padding import pad_batch
from rrhf.scoring.rewards import encode_for_reward, score
from rrhf.scoring.segment_classifier import (
    IGNORE,
    SEGMENT_KINDS,
    encode_marked,
    segment_error_probabilities,
    segment_labels,
)
from rrhf.studies.fine_grained.config import SegmentRewardModels
from rrhf.studies.fine_grained.labels import compare, coverage, span_errors
from rrhf.training.loop import train_model
from rrhf.training.pairwise import collate_pairs, reward_pair_loss

log = logging.getLogger("rrhf")
KINDS = (*SEGMENT_KINDS, "completeness")


def collate_segments(examples: list[tuple[list[int], list[int], list[int]]], pad_token_id: int) -> dict:
    """input_ids / attention_mask (B, L) and labels (B, L): each segment's label at its marker, IGNORE elsewhere."""
    input_ids, attention_mask = pad_batch([ids for ids, _, _ in examples], pad_token_id)
    labels = torch.full_like(input_ids, IGNORE)
    for row, (_, positions, values) in enumerate(examples):
        labels[row, positions] = torch.tensor(values, dtype=labels.dtype)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def compute_segment_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """The loop's ``compute_loss``: cross-entropy of the two classes at the markers (logits (B, L, 2), labels
    (B, L))."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return segment_classification_loss(logits, batch["labels"], IGNORE), {}


def classification_metrics(predicted: list[int], labels: list[int]) -> dict[str, float | int | None]:
    """Accuracy, the error class's precision / recall / F1, and the macro F1 of both classes (labels 0/1)."""
    def f1(positive: int) -> tuple[float | None, float | None, float | None]:
        hits = sum(p == positive and y == positive for p, y in zip(predicted, labels))
        said, true = predicted.count(positive), labels.count(positive)
        precision, recall = (hits / said if said else None), (hits / true if true else None)
        both = precision is not None and recall is not None and precision + recall > 0
        return precision, recall, (2 * precision * recall / (precision + recall) if both else None)

    precision, recall, error_f1 = f1(1)
    clean_f1 = f1(0)[2]
    return {"segments": len(labels), "error_share": sum(labels) / len(labels) if labels else None,
            "accuracy": sum(p == y for p, y in zip(predicted, labels)) / len(labels) if labels else None,
            "error_precision": precision, "error_recall": recall, "error_f1": error_f1,
            "macro_f1": (error_f1 + clean_f1) / 2 if error_f1 is not None and clean_f1 is not None else None}


def split_records(records: list[FeedbackRecord], held_out: float) -> tuple[list[FeedbackRecord], list[FeedbackRecord]]:
    """(train, held out): a fixed-seed draw of ``held_out`` of the records, the same for every reward model."""
    chosen = set(random.Random(0).sample(range(len(records)), round(held_out * len(records))))
    return ([r for i, r in enumerate(records) if i not in chosen], [r for i, r in enumerate(records) if i in chosen])


def clean_errors(record: FeedbackRecord, index: int = 0) -> list[SpanError]:
    """The errors of prediction ``index`` + 1 before annotator noise where the world knows the question, else the
    record's annotations (of prediction 1)."""
    if parse_request(record.question):
        return span_errors(record.question, record.predictions[index])
    return record.errors


def clean_comparisons(record: FeedbackRecord) -> list[int]:
    """A record's six completeness comparisons before annotator noise where the world knows the question (by
    :func:`rrhf.studies.fine_grained.labels.coverage`), else the record's own."""
    if parse_request(record.question) is None:
        return record.preference
    scores = [coverage(record.question, reply) for reply in record.predictions]
    return [compare(scores[a - 1], scores[b - 1]) for a, b in PREFERENCE_PAIRS]


def held_out_segment_metrics(model, tokenizer, test: list[FeedbackRecord], kind: str,
                             spec: SegmentRewardModels) -> dict[str, Any]:
    """Per-segment metrics of a trained segment reward model on the held-out records (:func:`classification_metrics`,
    prefixed ``held_out_``): against the clean labels of all their replies where the world knows the question
    (its labels are the truth, not annotations, so every prediction counts), else against prediction 1's
    annotations; and ``held_out_accuracy_on_annotations``, on prediction 1's annotations alone."""
    replies = [(r, index) for r in test for index in (range(len(r.predictions)) if parse_request(r.question) else [0])]
    probabilities = segment_error_probabilities(model, tokenizer, [r.question for r, _ in replies],
                                                [r.predictions[i] for r, i in replies], kind, spec.marker_position,
                                                spec.max_length)
    predicted, truths, first, annotated = [], [], [], []
    for (record, index), found in zip(replies, probabilities):
        reply = record.predictions[index]
        truth = segment_labels(reply, clean_errors(record, index), kind)[1]
        given = segment_labels(reply, record.errors, kind)[1] if index == 0 else truth
        for label, annotation, probability in zip(truth, given, found):
            if label != IGNORE:
                predicted.append(int(probability > 0.5))
                truths.append(label)
            if index == 0 and annotation != IGNORE:
                first.append(int(probability > 0.5))
                annotated.append(annotation)
    return {"held_out_segment_replies": len(replies),
            **{f"held_out_{key}": value for key, value in classification_metrics(predicted, truths).items()},
            "held_out_accuracy_on_annotations": classification_metrics(first, annotated)["accuracy"]}


def train_segment_reward_model(kind: str, init_model: str, feedback_file: str, output_dir: str,
                               reward_models: SegmentRewardModels | dict[str, Any], held_out: float,
                               precision: Precision | dict[str, Any], log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: train reward model ``kind`` (relevance, factuality or completeness) from ``init_model``
    on the qa-feedback file (for completeness: the file of completeness comparisons), evaluate it on the held-out
    questions, and save it with ``metrics.json``."""
    start_job(log_path, output_dir)
    if kind not in KINDS:
        raise ValueError(f"fine-grained reward model kind {kind!r} is not one of {list(KINDS)}")
    spec = SegmentRewardModels.coerce(reward_models)
    train, test = split_records(read_qa_feedback(feedback_file), held_out)
    tokenizer = load_tokenizer(init_model, padding_side="right")
    set_seed(spec.training.seed)  # the new head is initialised here
    if kind == "completeness":
        return _train_completeness(init_model, tokenizer, train, test, output_dir, spec, precision)
    examples = []
    for record in train:
        spans, labels = segment_labels(record.predictions[0], record.errors, kind)
        ids, positions = encode_marked(tokenizer, record.question, record.predictions[0], spans,
                                       spec.marker_position, spec.max_length)
        kept = [(p, y) for p, y in zip(positions, labels) if y != IGNORE]
        if kept:
            examples.append((ids, [p for p, _ in kept], [y for _, y in kept]))
    model = load_for_training(init_model, AutoModelForTokenClassification, num_labels=2)
    model.config.pad_token_id = tokenizer.pad_token_id
    log.info("training the %s reward model from %s on %d replies (%d segments)", kind, init_model, len(examples),
             sum(len(y) for _, _, y in examples))
    result = train_model(model, examples, [len(ids) for ids, _, _ in examples],
                         lambda batch: collate_segments(batch, tokenizer.pad_token_id), compute_segment_loss,
                         spec.training, precision, f"{kind} reward")
    plain = result.plain_model.eval()
    metrics = {"kind": kind, "train_replies": len(examples), "held_out_replies": len(test),
               **held_out_segment_metrics(plain, tokenizer, test, kind, spec),
               "final_train_loss": result.rows[-1]["loss"]}
    log.info("%s reward model, held out: %s", kind, metrics)
    result.save(output_dir, tokenizer, {"stage": "train_segment_reward_model", "kind": kind, "init": init_model,
                                        "data": [feedback_file],
                                        "reward_models": spec.as_config()}, metrics)
    return metrics


def _train_completeness(init_model: str, tokenizer, train: list[FeedbackRecord], test: list[FeedbackRecord],
                        output_dir: str, spec: SegmentRewardModels, precision) -> dict[str, Any]:
    """The completeness reward model: Bradley-Terry on each record's comparisons; held-out pair accuracy
    against the clean comparisons (:func:`clean_comparisons`), and the mean and std of its scores on the
    training replies."""
    def pairs(records):
        return [(r.question, r.predictions[a - 1], r.predictions[b - 1]) for r in records
                for a, b in preference_pairs(r)]

    def encode(prompt: str, reply: str) -> list[int]:
        return encode_for_reward(tokenizer, prompt, reply, spec.max_length)

    examples = [(encode(q, c), encode(q, r)) for q, c, r in pairs(train)]
    if len(examples) < spec.training.batch_size:
        raise ValueError(f"fine_grained: the completeness file's {len(train)} training questions hold "
                         f"{len(examples)} comparisons (ties are 0), fewer than one batch of "
                         f"{spec.training.batch_size}: annotate more questions (fine_grained.feedback.prompts)")
    model = load_for_training(init_model, AutoModelForSequenceClassification, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    log.info("training the completeness reward model from %s on %d comparisons", init_model, len(examples))
    result = train_model(model, examples, [max(len(a), len(b)) for a, b in examples],
                         lambda batch: collate_pairs(batch, tokenizer.pad_token_id), reward_pair_loss, spec.training,
                         precision, "completeness reward")
    plain = result.plain_model.eval()
    replies = [(r.question, reply) for r in train for reply in r.predictions]
    scores = torch.tensor(score(plain, tokenizer, [q for q, _ in replies], [a for _, a in replies],
                                max_length=spec.max_length))
    held_out = pairs([FeedbackRecord(**{**vars(r), "preference": clean_comparisons(r)}) for r in test])
    questions = [q for q, _, _ in held_out]
    chosen = score(plain, tokenizer, questions, [c for _, c, _ in held_out], max_length=spec.max_length)
    rejected = score(plain, tokenizer, questions, [r for _, _, r in held_out], max_length=spec.max_length)
    accuracy = sum(c > r for c, r in zip(chosen, rejected)) / len(held_out) if held_out else None
    metrics = {"kind": "completeness", "train_pairs": len(examples), "held_out_pairs": len(held_out),
               "held_out_pair_accuracy": accuracy,
               "mean": float(scores.mean()), "std": float(scores.std()), "final_train_loss": result.rows[-1]["loss"]}
    log.info("completeness reward model: %s", metrics)
    result.save(output_dir, tokenizer, {"stage": "train_segment_reward_model", "kind": "completeness",
                                        "init": init_model, "reward_models": spec.as_config()}, metrics)
    return metrics
