"""Fine-grained feedback on an initial policy's own replies, in FineGrainedRLHF's qa-feedback layout.

Each drawn training prompt (never one RRHF trains on) gets ``samples`` replies sampled from the policy (top-k
at a temperature, as the original's initial policy sampled them). The tiny world's annotators then give what
the original's gave: span errors and missing information on prediction 1 (:mod:`rrhf.studies.fine_grained.labels`,
each segment's label flipped with ``label_noise``), and a holistic preference between every two replies (the
dataset's simulated annotators, :mod:`rrhf.data.annotators`). A second file holds the completeness comparisons
the original derives from the missing information (create_comp_rm_files.py): the replies compared by the share
of the request they cover, each comparison turned round with ``label_noise``; it trains the completeness reward
model. The reference answer (``gold``, and ``corrected-prediction``) is gold's best reply.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from rrhf.config.blocks import PromptSubset
from rrhf.data.annotators import AnnotatorBias, label_pairs
from rrhf.data.gold_reward import best_reply, parse_request
from rrhf.data.qa_feedback import PREFERENCE_PAIRS, FeedbackRecord, read_qa_feedback, write_qa_feedback
from rrhf.io import setup_logging
from rrhf.models.loading import load_causal_lm, resolve_device
from rrhf.sampling.preference_collection import annotated_prompts
from rrhf.sampling.rollouts import sample_actions
from rrhf.studies.fine_grained.config import FeedbackCollection
from rrhf.studies.fine_grained.labels import (
    compare,
    coverage,
    flip_comparisons,
    missing_info,
    noisy_span_errors,
    span_errors,
)

log = logging.getLogger("rrhf")
KEY = "fine_grained.feedback"
SAMPLING_CHUNK = 128  # replies sampled per generate call


def holistic_preferences(prompt: str, replies: list[str], grade, label_noise: float, bias: AnnotatorBias,
                         rng: random.Random) -> list[int]:
    """The six comparisons (:data:`PREFERENCE_PAIRS`) of a question's replies by the dataset's annotators: 1 or 2
    for the one they prefer, 0 for two identical replies."""
    pairs = [(prompt, replies[a - 1], replies[b - 1], grade(prompt, replies[a - 1]), grade(prompt, replies[b - 1]))
             for a, b in PREFERENCE_PAIRS]
    labelled = label_pairs(pairs, label_noise, bias, rng)
    return [0 if first == second else 1 if chosen == first else 2
            for (_, first, second, _, _), (_, chosen, _) in zip(pairs, labelled)]


def feedback_record(prompt: str, replies: list[str], label_noise: float, rng: random.Random) -> FeedbackRecord:
    """One question's record: noisy span errors and missing information on prediction 1, no preference yet."""
    request = parse_request(prompt)
    reference = best_reply(request) if request is not None else ""
    errors = noisy_span_errors(replies[0], span_errors(prompt, replies[0]), label_noise, rng)
    return FeedbackRecord(question=prompt, predictions=list(replies), gold=reference, errors=errors,
                          missing=missing_info(prompt, replies[0]), corrected=reference)


def completeness_preferences(record: FeedbackRecord, label_noise: float, rng: random.Random) -> list[int]:
    """The six comparisons of a record's replies by their coverage of the request (:func:`coverage`), each turned
    round with probability ``label_noise``."""
    scores = [coverage(record.question, reply) for reply in record.predictions]
    return flip_comparisons([compare(scores[a - 1], scores[b - 1]) for a, b in PREFERENCE_PAIRS], label_noise, rng)


def sample_replies(policy: str, prompts: list[str], feedback: FeedbackCollection, device: str, dtype: str,
                   max_prompt_tokens: int) -> list[list[str]]:
    """``feedback.samples`` sampled replies per prompt (cut at the next turn), :data:`SAMPLING_CHUNK` at a time."""
    lm, tokenizer = load_causal_lm(policy, resolve_device(device), dtype)
    repeated = [prompt for prompt in prompts for _ in range(feedback.samples)]
    texts = []
    for start in range(0, len(repeated), SAMPLING_CHUNK):
        chunk = repeated[start:start + SAMPLING_CHUNK]
        texts += [text for _, _, text in sample_actions(lm, tokenizer, chunk, feedback.generation,
                                                        max_prompt_tokens, feedback.seed + start)]
        log.info("sampled %d of %d replies", len(texts), len(repeated))
    return [texts[i:i + feedback.samples] for i in range(0, len(texts), feedback.samples)]


def given_feedback(feedback: FeedbackCollection, feedback_output: str, completeness_output: str
                   ) -> list[FeedbackRecord]:
    """``feedback.file`` (and ``feedback.completeness_file``, else the same records) read, checked and written as
    the stage's two outputs; a broken file is named with its record and field."""
    records = read_qa_feedback(feedback.file)
    completeness = read_qa_feedback(feedback.completeness_file) if feedback.completeness_file else records
    for name, given in ((feedback.file, records), (feedback.completeness_file or feedback.file, completeness)):
        if not given:
            raise ValueError(f"{KEY}: {name} holds no records")
    write_qa_feedback(records, feedback_output)
    write_qa_feedback(completeness, completeness_output)
    log.info("people's feedback: %d questions from %s, completeness comparisons from %s", len(records),
             feedback.file, feedback.completeness_file or feedback.file)
    return records


def collect_feedback(policy: str, train_data: str, feedback_output: str, completeness_output: str,
                     feedback: FeedbackCollection | dict[str, Any], excluded_prompts: PromptSubset | dict[str, Any],
                     max_prompt_tokens: int = 128, device: str = "auto", dtype: str = "auto",
                     log_path: str | None = None) -> list[FeedbackRecord]:
    """Stage entry point: sample replies of ``policy`` to ``feedback.prompts`` drawn training prompts, annotate
    them (see the module) and write ``feedback_output`` (holistic preferences) and ``completeness_output`` (the
    same records with the completeness comparisons as ``preference``), both in the qa-feedback layout. With
    ``feedback.file`` people's annotations are used instead (:func:`given_feedback`).

    The annotators need the dataset's gold reward: a dataset without one is refused, naming ``fine_grained``,
    before any model is loaded."""
    setup_logging(log_path)
    feedback = FeedbackCollection.coerce(feedback)
    if feedback.file is not None:
        return given_feedback(feedback, feedback_output, completeness_output)
    grade, spec, drawn = annotated_prompts(train_data, excluded_prompts, feedback.prompts, feedback.seed, KEY,
                                           "use a synthetic dataset, or people's annotations (fine_grained.feedback."
                                           "file)")
    prompts = list(drawn["prompt"])
    replies = sample_replies(policy, prompts, feedback, device, dtype, max_prompt_tokens)
    rng = random.Random(feedback.seed)
    bias = AnnotatorBias.coerce(spec.get("annotator_bias"))
    records, completeness = [], []
    for prompt, texts in zip(prompts, replies):
        record = feedback_record(prompt, texts, feedback.label_noise, rng)
        record.preference = holistic_preferences(prompt, texts, grade, spec.get("label_noise", 0.0), bias, rng)
        records.append(record)
        completeness.append(FeedbackRecord(**{**vars(record), "preference": completeness_preferences(
            record, feedback.label_noise, rng)}))
    write_qa_feedback(records, feedback_output)
    write_qa_feedback(completeness, completeness_output)
    errors = sum(len(record.errors) for record in records)
    distinct = sum(len(set(record.predictions)) for record in records) / len(records)
    log.info("%d questions, %.2f distinct replies each; %d span errors on prediction 1; %d holistic and %d "
             "completeness comparisons", len(records), distinct, errors,
             sum(map(bool, (v for r in records for v in r.preference))),
             sum(map(bool, (v for r in completeness for v in r.preference))))
    return records
