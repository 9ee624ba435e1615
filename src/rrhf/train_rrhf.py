"""RRHF training: each query with its K scored responses is one example.

By default each query's prompt is computed once, packed with its K responses into one row
(:mod:`rrhf.prompt_sharing`); with ``prompt_sharing: separate``, or ``auto`` on a model that cannot share,
each response runs as its own sequence prompt + response + EOS. Either way rows are sorted by length and
run in chunks of similar length (:mod:`rrhf.query_batches`), so little compute goes to padding.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from rrhf.adapters import add_lora
from rrhf.io import start_job
from rrhf.losses import rank_accuracy, rank_pair_counts, rrhf_loss, sequence_scores
from rrhf.models import load_causal_lm, load_reward_model, resolve_device
from rrhf.prompt_sharing import sharing_decision
from rrhf.query_batches import (
    build_examples,
    causal_lm_sharing_problem,
    collate_queries,
    keeps_logits,
    response_logprobs,
)
from rrhf.reward_monitor import RewardMonitor, monitor_prompts
from rrhf.training import TrainingParams, train_model
from rrhf.training_sets import read_scored_set

log = logging.getLogger("rrhf")
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "reward"]


def query_collator(model, tokenizer, max_tokens_per_forward: int, prompt_sharing: str, key: str, what: str):
    """``collate(examples)`` for ``model``'s training batches: packed rows when ``prompt_sharing`` (config
    ``key``) is ``packed``, or ``auto`` and the model can share prompts (:func:`causal_lm_sharing_problem`);
    logits only where a token is scored when the model takes ``logits_to_keep``. Logs which it is."""
    packed = sharing_decision(prompt_sharing, key, lambda: causal_lm_sharing_problem(model), what)
    keep = keeps_logits(model)
    return lambda examples: collate_queries(examples, tokenizer.pad_token_id, max_tokens_per_forward,
                                            packed=packed, logits_on_scored_only=keep)


def make_rrhf_loss(rank_weight: float, length_penalty: float, ft_reduction: str):
    """A ``compute_loss(model, batch)`` for :func:`rrhf.training.train_model`."""

    def compute_loss(model, batch):
        token_logprobs, mask = response_logprobs(model, batch)
        loss, rank_loss, ft_loss = rrhf_loss(token_logprobs, mask, batch["rewards"], rank_weight=rank_weight,
                                             length_penalty=length_penalty, ft_reduction=ft_reduction)
        scores = sequence_scores(token_logprobs.detach(), mask, length_penalty)
        accuracy = rank_accuracy(scores, batch["rewards"], mask.any(-1))
        return loss, {"rank_loss": float(rank_loss.detach()), "ft_loss": float(ft_loss.detach()),
                      "rank_accuracy": accuracy}

    return compute_loss


@torch.no_grad()
def policy_rank_accuracy(model, tokenizer, frame: pd.DataFrame, max_length: int, length_penalty: float = 1.0,
                         batch_size: int = 8, prompt_sharing: str = "auto",
                         key: str = "scoring.prompt_sharing") -> float:
    """How often ``model``'s length-normalised log-probabilities order a scored set's responses like the rewards
    (``prompt_sharing`` as in :func:`query_collator`)."""
    examples = build_examples(frame, tokenizer, max_length)
    device = next(model.parameters()).device
    collate = query_collator(model, tokenizer, 1 << 20, prompt_sharing, key, "policy log-probabilities")
    right = total = 0
    for start in range(0, len(examples), batch_size):
        batch = {name: value.to(device) for name, value in collate(examples[start:start + batch_size]).items()}
        token_logprobs, mask = response_logprobs(model, batch)
        counts = rank_pair_counts(sequence_scores(token_logprobs, mask, length_penalty), batch["rewards"],
                                  mask.any(-1))
        right, total = right + counts[0], total + counts[1]
    return right / total if total else float("nan")


def run_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """Steps, final loss and mean rank accuracy of the first and last epoch, from an RRHF run's log rows."""
    first_epoch, last_epoch = rows[rows["epoch"] <= 1], rows[rows["epoch"] > rows["epoch"].max() - 1]
    return {"steps": len(rows), "final_loss": float(rows["loss"].iloc[-1]),
            "rank_accuracy_first_epoch": float(first_epoch["rank_accuracy"].mean()),
            "rank_accuracy_last_epoch": float(last_epoch["rank_accuracy"].mean())}


def reward_monitor(reward_model, settings: dict[str, Any] | None, tokenizer, frame: pd.DataFrame,
                   dataset_source: str | None, dtype: str) -> RewardMonitor | None:
    """The monitor of the policy's greedy reward on ``settings["prompts"]`` training prompts every
    ``settings["every_steps"]`` steps; None when off (no reward model, or every_steps 0)."""
    if reward_model is None or not settings or not settings.get("every_steps"):
        return None
    scorer, scorer_tokenizer = load_reward_model(reward_model, resolve_device("auto"), dtype)
    return RewardMonitor(scorer, scorer_tokenizer, tokenizer, monitor_prompts(frame, settings["prompts"]),
                         settings["every_steps"], settings["max_new_tokens"], dataset_source)


def train_rrhf(policy: str, scored: str, output_dir: str, training: dict[str, Any], rank_weight: float = 1.0,
               length_penalty: float = 1.0, ft_reduction: str = "token_mean", max_tokens_per_forward: int = 4096,
               prompt_sharing: str = "auto", reward_model: str | dict[str, Any] | None = None,
               reward_during_training: dict[str, Any] | None = None, dataset_source: str | None = None,
               dtype: str = "auto", checkpoint: dict[str, Any] | None = None,
               log_path: str | None = None) -> dict[str, float]:
    """Stage entry point: RRHF-train ``policy`` on a scored training set; save it, its log and metrics.

    Writes ``output_dir``/model.safetensors (+ config, tokenizer), ``train_log.parquet``
    (step, epoch, loss, rank_loss, ft_loss, rank_accuracy, lr; with ``reward_during_training``
    ``{every_steps, prompts, max_new_tokens}`` and a ``reward_model`` also reward and gold_reward at those
    steps, see rrhf.reward_monitor) and ``metrics.json``.
    """
    start_job(log_path, output_dir)
    params = TrainingParams.from_config(training)
    frame = read_scored_set(scored, SCORED_COLUMNS)  # raises naming NaN / non-numeric rewards, repeated rows
    model, tokenizer = load_causal_lm(policy)
    collate = query_collator(model, tokenizer, max_tokens_per_forward, prompt_sharing, "rrhf.prompt_sharing",
                             "RRHF training")
    model = add_lora(model, params.lora)
    examples = build_examples(frame, tokenizer, params.max_length)
    log.info("RRHF on %s: %d queries, %d responses, rank_weight %s, length_penalty %s, ft %s",
             scored, len(examples), len(frame), rank_weight, length_penalty, ft_reduction)
    result = train_model(model, examples, [e.length for e in examples], collate,
                         make_rrhf_loss(rank_weight, length_penalty, ft_reduction), params, "rrhf", checkpoint,
                         reward_monitor(reward_model, reward_during_training, tokenizer, frame, dataset_source, dtype))
    metrics = {**run_metrics(pd.DataFrame(result.rows)), "queries": len(examples), "responses": len(frame),
               "rank_weight": rank_weight, "length_penalty": length_penalty, "ft_reduction": ft_reduction}
    log.info("RRHF done: %s", metrics)
    result.save(output_dir, tokenizer, {"stage": "train_rrhf", "policy": policy, "scored": scored,
                                        "training": training}, metrics)
    return metrics
