"""RRHF training: each query with its K scored responses is one example.

By default each query's prompt is computed once, packed with its K responses into one row
(:mod:`rrhf.batching.prompt_sharing`); with ``prompt_sharing: separate``, or ``auto`` on a model that cannot share,
each response runs as its own sequence prompt + response + EOS. Either way rows are sorted by length and
run in chunks of similar length (:mod:`rrhf.batching.query_batches`), so little compute goes to padding.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from rrhf.batching.query_batches import (
    build_examples,
    query_collator,
)
from rrhf.config.blocks import RRHF, Precision, Scoring
from rrhf.data.dataset_facts import gold_source
from rrhf.io import start_job
from rrhf.models.adapters import add_lora
from rrhf.models.loading import load_causal_lm_for_training
from rrhf.scoring.training_sets import read_scored_set
from rrhf.training.loop import train_model
from rrhf.training.ranking import make_rrhf_loss, run_metrics
from rrhf.training.reward_monitor import reward_monitor

log = logging.getLogger("rrhf")
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "reward"]


def train_rrhf(policy: str, scored: str, output_dir: str, rrhf: RRHF | dict[str, Any],
               precision: Precision | dict[str, Any], reward_model: str | dict[str, Any] | None = None,
               scoring: Scoring | dict[str, Any] | None = None, checkpoint: dict[str, Any] | None = None,
               tracking: dict[str, Any] | None = None,
               log_path: str | None = None) -> dict[str, float]:
    """Stage entry point: RRHF-train ``policy`` on a scored training set with the ``rrhf`` block (its training
    hyper-parameters, rank weight, length penalty, fine-tuning reduction, chunking and prompt sharing); save
    it, its log and metrics.

    Writes ``output_dir``/model.safetensors (+ config, tokenizer), ``train_log.parquet``
    (step, epoch, loss, rank_loss, ft_loss, rank_accuracy, lr; with ``rrhf.reward_during_training.every_steps``
    and a ``reward_model`` (scoring with ``scoring``) also reward and gold_reward at those steps, see
    rrhf.training.reward_monitor) and ``metrics.json``.
    """
    start_job(log_path, output_dir)
    rrhf, precision = RRHF.coerce(rrhf), Precision.coerce(precision)
    params = rrhf.training
    frame = read_scored_set(scored, SCORED_COLUMNS)  # raises naming NaN / non-numeric rewards, repeated rows
    model, tokenizer = load_causal_lm_for_training(policy)
    collate = query_collator(model, tokenizer, rrhf.max_tokens_per_forward, rrhf.prompt_sharing,
                             "rrhf.prompt_sharing", "RRHF training")
    model = add_lora(model, params.lora)
    examples = build_examples(frame, tokenizer, params.max_length)
    log.info("RRHF on %s: %d queries, %d responses, rank_weight %s, length_penalty %s, ft %s",
             scored, len(examples), len(frame), rrhf.rank_weight, rrhf.length_penalty, rrhf.ft_reduction)
    monitor = reward_monitor(reward_model, rrhf.reward_during_training, scoring, tokenizer, frame,
                             gold_source(scored), precision.dtype)
    result = train_model(model, examples, [e.length for e in examples], collate,
                         make_rrhf_loss(rrhf.rank_weight, rrhf.length_penalty, rrhf.ft_reduction), params, precision,
                         "rrhf", checkpoint, monitor, tracking, output_dir)
    metrics = {**run_metrics(pd.DataFrame(result.rows)), "queries": len(examples), "responses": len(frame),
               "rank_weight": rrhf.rank_weight, "length_penalty": rrhf.length_penalty,
               "ft_reduction": rrhf.ft_reduction}
    log.info("RRHF done: %s", metrics)
    result.save(output_dir, tokenizer, {"stage": "train_rrhf", "policy": policy, "scored": scored, "data": [scored],
                                        "rrhf": rrhf.as_config()}, metrics)
    return metrics
