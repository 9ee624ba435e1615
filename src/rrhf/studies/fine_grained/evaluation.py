"""Fine-grained evaluation of a policy's test replies (Wu et al., 2023): error rates per kind and completeness.

Per reply, by gold (the tiny world's clean labels, :mod:`rrhf.studies.fine_grained.labels`):

- ``relevance_error_rate``: the share of its sub-sentences with a relevance error (irrelevant or repetitive);
- ``factual_error_rate``: the share of its sentences with a factual error (wrong step order, another request's
  alternative, a harmful method);
- ``completeness``: the share of what the request needs that it holds (:func:`coverage`);

and by the fine-grained reward models (the proxies the policy was trained on): ``relevance_rm_error_rate`` and
``factuality_rm_error_rate`` (segments judged erroneous) and ``completeness_rm`` ((r - mean) / std). A reply
with no segment has no error (rate 0). The original reports the error-free shares; these are 1 minus them.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from rrhf.io import read_parquet, setup_logging, write_json, write_parquet
from rrhf.models.loading import resolve_device
from rrhf.scoring.segment_classifier import SEGMENT_KINDS, segment_labels
from rrhf.scoring.segment_rewards import load_segment_rewarder
from rrhf.studies.fine_grained.labels import coverage, span_errors

GOLD_COLUMNS = ("relevance_error_rate", "factual_error_rate", "completeness")
PROXY_COLUMNS = ("relevance_rm_error_rate", "factuality_rm_error_rate", "completeness_rm")
FINE_GRAINED_COLUMNS = (*GOLD_COLUMNS, *PROXY_COLUMNS)
log = logging.getLogger("rrhf")


def _error_share(labels: list[int]) -> float:
    return sum(label == 1 for label in labels) / len(labels) if labels else 0.0


def gold_fine_grained(prompt: str, reply: str) -> dict[str, float]:
    """A reply's gold error rates and completeness (see the module); NaN for a prompt the world does not know."""
    covered = coverage(prompt, reply)
    if covered is None:
        return dict.fromkeys(GOLD_COLUMNS, math.nan)
    errors = span_errors(prompt, reply)
    relevance = segment_labels(reply, errors, "relevance")[1]
    factual = [1 if any(e.error_type in SEGMENT_KINDS["factuality"][1] and e.start < end and start < e.end
                        for e in errors) else 0 for start, end in segment_labels(reply, errors, "factuality")[0]]
    return {"relevance_error_rate": _error_share(relevance), "factual_error_rate": _error_share(factual),
            "completeness": covered}


def evaluate_fine_grained(generations: str, reward_models: dict[str, str], marker_position: str, max_length: int,
                          segments_output: str, metrics_output: str, device: str = "auto",
                          log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: the fine-grained measures of each reply of an evaluation's ``generations`` (prompt_id,
    prompt, response), written per reply to ``segments_output`` and as means (``{column}_mean``, and ``n``) to
    ``metrics_output``."""
    setup_logging(log_path)
    frame = read_parquet(generations, ["prompt_id", "prompt", "response"])
    prompts, replies = list(frame["prompt"]), list(frame["response"])
    gold = pd.DataFrame([gold_fine_grained(p, r) for p, r in zip(prompts, replies)], columns=list(GOLD_COLUMNS))
    rewarder = load_segment_rewarder(reward_models, {}, marker_position, max_length, resolve_device(device),
                                     all_models=True)
    judged = rewarder.judge(prompts, replies)
    proxies = pd.DataFrame({
        "relevance_rm_error_rate": [_error_share([int(p > 0.5) for *_, p in j["relevance"]]) for j in judged],
        "factuality_rm_error_rate": [_error_share([int(p > 0.5) for *_, p in j["factuality"]]) for j in judged],
        "completeness_rm": [j["completeness"] for j in judged]})
    table = pd.concat([frame[["prompt_id"]].reset_index(drop=True), gold, proxies], axis=1)
    metrics = {"n": len(table), **{f"{column}_mean": float(table[column].mean()) for column in FINE_GRAINED_COLUMNS}}
    write_parquet(table, segments_output, {"stage": "evaluate_fine_grained", "generations": generations,
                                           "reward_models": reward_models})
    write_json(metrics, metrics_output)
    log.info("fine-grained evaluation of %s: %s", generations, metrics)
    return metrics
