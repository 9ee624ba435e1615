"""RRHF's successors in the one training loop: each method is a loss (rrhf.losses) over the log-probabilities
of an example's replies, which RRHF's batching computes with the prompt packed once per example.

An example is a scored-set row group made by :func:`rrhf.studies.preference_methods.examples.method_examples`: for
the pairwise
methods its chosen reply (response 0) and rejected reply (response 1); for KTO its reply (response 0, reward 1
when desirable) and a reply to another prompt (response 1), on which the batch estimates KL(pi || rho). Methods
with a reference read rho's log-probabilities from the cached stage
(rrhf.studies.preference_methods.reference_logprobs), carried
in the batch as ``reference_logps``; none holds a second model.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from rrhf.batching.query_batches import QueryExample, build_examples, query_collator, response_logprobs
from rrhf.config.blocks import RRHF, Precision
from rrhf.io import read_parquet, start_job
from rrhf.losses import dpo_loss, ipo_loss, kto_loss, kto_reference_point, orpo_loss, simpo_loss, slic_loss
from rrhf.models.adapters import add_lora
from rrhf.models.loading import load_causal_lm_for_training
from rrhf.plan.settings import METHODS
from rrhf.training.loop import train_model

log = logging.getLogger("rrhf")


def method_losses(method: str, hyper: dict[str, float], logps: torch.Tensor, lengths: torch.Tensor,
                  reference: torch.Tensor | None, rewards: torch.Tensor) -> torch.Tensor:
    """Each example's loss under ``method``: logps, lengths, reference (rho's log-probabilities) and rewards are
    (B, 2), response 0 the chosen (or KTO's own) reply; returns (B,)."""
    nll = -logps[:, 0] / lengths[:, 0].clamp(min=1)  # the chosen reply's mean token NLL
    if method in ("DPO", "R-DPO"):
        return dpo_loss(logps[:, 0], logps[:, 1], reference[:, 0], reference[:, 1], hyper["beta"],
                        hyper.get("length_weight"), lengths[:, 0], lengths[:, 1])
    if method == "IPO":
        return ipo_loss(logps[:, 0], logps[:, 1], reference[:, 0], reference[:, 1], lengths[:, 0], lengths[:, 1],
                        hyper["beta"])
    if method == "SLiC":
        return slic_loss(logps[:, 0], logps[:, 1], nll, hyper["beta"], hyper["nll_weight"])
    if method == "SimPO":
        return simpo_loss(logps[:, 0], logps[:, 1], lengths[:, 0], lengths[:, 1], hyper["beta"], hyper["gamma"])
    if method == "ORPO":
        return orpo_loss(logps[:, 0], logps[:, 1], lengths[:, 0], lengths[:, 1], nll, hyper["odds_ratio_weight"])
    if method == "KTO":
        point = kto_reference_point(logps[:, 1], reference[:, 1])
        return kto_loss(logps[:, 0], reference[:, 0], rewards[:, 0] > 0.5, point, hyper["beta"],
                        hyper["desirable_weight"], hyper["undesirable_weight"])
    raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")


def make_method_loss(method: str, hyper: dict[str, float]):
    """A ``compute_loss(model, batch)`` for :func:`rrhf.training.loop.train_model`: the mean of the examples'
    losses, and, logged beside it, the share of pairs whose chosen reply the policy now prefers (by summed
    log-probability relative to rho where the method has one)."""

    def compute_loss(model, batch):
        token_logprobs, mask = response_logprobs(model, batch)
        logps, lengths = (token_logprobs * mask).sum(-1), mask.sum(-1).to(token_logprobs.dtype)
        reference = batch.get("reference_logps")
        losses = method_losses(method, hyper, logps, lengths, reference, batch["rewards"])
        logged = {"chosen_logp": float(logps[:, 0].detach().mean())}
        if METHODS[method].data == "pairs":
            ratios = (logps - reference).detach() if reference is not None else logps.detach()
            logged["preference_accuracy"] = float((ratios[:, 0] > ratios[:, 1]).float().mean())
        return losses.mean(), logged

    return compute_loss


def attach_references(examples: list[QueryExample], frame: pd.DataFrame, reference: pd.DataFrame,
                      where: str) -> None:
    """Give each example (in :func:`build_examples`' order) rho's log-probabilities of its replies from the
    cached ``reference`` frame (prompt_id, response_index, reference_logp); raises naming ``where`` when one is
    missing."""
    values = reference.set_index(["prompt_id", "response_index"])["reference_logp"]
    for example, (prompt_id, group) in zip(examples, frame.sort_values(["prompt_id", "response_index"])
                                           .groupby("prompt_id", sort=False)):
        keys = list(zip([prompt_id] * len(group), group["response_index"]))
        missing = [key for key in keys if key not in values.index]
        if missing:
            raise ValueError(f"{where}: no reference log-probability for {missing[:3]} (made from another "
                             "training set?)")
        example.references = [float(values[key]) for key in keys]


def train_preference_method(policy: str, examples_path: str, reference_path: str | None, output_dir: str,
                            method: str, hyper: dict[str, float], rrhf: RRHF | dict[str, Any],
                            precision: Precision | dict[str, Any], checkpoint: dict[str, Any] | None = None,
                            tracking: dict[str, Any] | None = None, log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: train ``policy`` with ``method`` on the examples at ``examples_path``
    (:func:`rrhf.studies.preference_methods.examples.method_examples`), with rho's cached log-probabilities at
    ``reference_path`` where the method needs them; batching, training length and hyper-parameters of the
    optimiser as RRHF's (``rrhf`` block). Writes the model, train_log.parquet and metrics.json."""
    start_job(log_path, output_dir)
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    rrhf, precision = RRHF.coerce(rrhf), Precision.coerce(precision)
    frame = read_parquet(examples_path, ["prompt_id", "prompt", "response_index", "response", "reward"])
    model, tokenizer = load_causal_lm_for_training(policy)
    collate = query_collator(model, tokenizer, rrhf.max_tokens_per_forward, rrhf.prompt_sharing,
                             "rrhf.prompt_sharing", f"{method} training")
    model = add_lora(model, rrhf.training.lora)
    examples = build_examples(frame, tokenizer, rrhf.training.max_length)
    if METHODS[method].reference:
        if reference_path is None:
            raise ValueError(f"{method} compares with the reference model: give its cached log-probabilities")
        attach_references(examples, frame, read_parquet(reference_path, ["prompt_id", "response_index",
                                                                         "reference_logp"]), reference_path)
    log.info("%s on %s: %d examples, %s", method, examples_path, len(examples), hyper)
    result = train_model(model, examples, [e.length for e in examples], collate, make_method_loss(method, hyper),
                         rrhf.training, precision, method, checkpoint, tracking=tracking, output_dir=output_dir)
    rows = pd.DataFrame(result.rows)
    metrics = {"method": method, **hyper, "examples": len(examples), "steps": len(rows),
               "final_loss": float(rows["loss"].iloc[-1])}
    result.save(output_dir, tokenizer, {"stage": "train_preference_method", "policy": policy, "method": method,
                                        "examples": examples_path, "data": [examples_path],
                                        "reference": reference_path, "hyper": hyper,
                                        "rrhf": rrhf.as_config()}, metrics)
    return metrics
