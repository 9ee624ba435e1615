"""Online RRHF (settings OP-{k} and OP-{k}+KL): the policy being trained samples its own training responses.

The RRHF authors did not release this part; this is our reading of the paper. Training visits the queries
epoch after epoch in a seeded order. Every k optimisation steps the policy, as trained so far, samples
responses for the queries of the next k steps (with the sampler of ``resampling.setting``: diverse beam
search in the paper), the reward model scores them, and those k steps train on them plus the queries'
provided responses, through the shared training loop. So no sample is more than k steps older than the
policy it trains, and every query is sampled once per epoch. With +KL each response's reward is lowered by
``kl_coef * KL(pi || rho)`` of that response (:func:`rrhf.models.token_spans.span_kl`), rho being the policy before
training (:class:`rrhf.models.value_head_policy.FrozenReference`).

It runs in one process or in several (``accelerate launch``, DDP or FSDP, like offline RRHF): each process samples
its share of a round's generation batches (the batches and seeds of a one-process run) with
:meth:`rrhf.training.loop.Trainer.generating` (under FSDP a plain copy of the policy gathered from the shards),
scores them and measures their KL with its own reward model and rho, and every process then trains on the whole
round, each taking its share of the batches. rho is a snapshot of the policy taken where it generates, in its
dtype, before the first step.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from rrhf.batching.query_batches import build_examples, encode_queries, query_collator
from rrhf.config.blocks import RRHF, OnlineSchedule, Precision, PromptSubset, Sampling, Scoring
from rrhf.data.dataset_facts import DATASET_KEY, facts_of, gold_source
from rrhf.data.gold_reward import gold_rewards
from rrhf.data.preference_pairs import select_subset
from rrhf.io import read_parquet, start_job
from rrhf.models.adapters import add_lora
from rrhf.models.loading import load_causal_lm_for_training, load_reward_model
from rrhf.models.token_spans import span_kl
from rrhf.models.value_head_policy import FrozenReference
from rrhf.padding import pad_batch
from rrhf.sampling.generation import SAMPLE_COLUMNS, generate_responses, sampler_arguments
from rrhf.scoring.rewards import check_finite, score
from rrhf.scoring.training_sets import SCORED_COLUMNS, combine_parts
from rrhf.training.checkpoints import frame_from_json, frame_to_json
from rrhf.training.loop import Trainer, micro_batches_per_epoch
from rrhf.training.ranking import make_rrhf_loss, run_metrics

log = logging.getLogger("rrhf")


@dataclass
class OnlineContext:
    """What a sampling round uses besides the policy: its tokenizer, the reward model, rho, the settings."""

    tokenizer: Any
    reward_model: torch.nn.Module
    reward_tokenizer: Any
    reference: FrozenReference
    online: OnlineSchedule
    sampling: Sampling
    scoring: Scoring
    max_length: int
    gold_source: str | None


def query_windows(count: int, per_window: int, epochs: float, seed: int, least: int = 1) -> list[list[int]]:
    """The query indices (of ``count``) each sampling round covers, in training order.

    Epoch e visits every query once, in an order shuffled with ``seed + e``, cut into windows of
    ``per_window`` queries (the last window of an epoch may be shorter); a fractional last epoch visits the
    start of its order only, ``round(epochs * count)`` visits in all. A last window of fewer than ``least``
    queries joins the window before it.
    """
    total = round(epochs * count)
    windows = []
    for epoch in range(math.ceil(epochs)):
        order = list(range(count))
        random.Random(seed + epoch).shuffle(order)
        order = order[: total - epoch * count]
        cut = [order[i:i + per_window] for i in range(0, len(order), per_window)]
        if len(cut) > 1 and len(cut[-1]) < least:
            cut[-2:] = [cut[-2] + cut[-1]]
        windows += cut
    return windows


@torch.no_grad()
def response_kl(model, reference: FrozenReference, tokenizer, prompts: list[str], responses: list[str],
                max_length: int, batch_size: int) -> list[float]:
    """KL(pi || rho) of each response, summed over its tokens (EOS included), encoded as training encodes it
    (the responses of one prompt cut together: :func:`rrhf.batching.query_batches.build_examples`). ``model`` is pi;
    rho is ``reference`` applied to it."""
    device = next(model.parameters()).device
    encoded = encode_queries(tokenizer, prompts, responses, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    values = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        input_ids, attention_mask = (t.to(device) for t in pad_batch([encoded[i][0] for i in chunk],
                                                                     tokenizer.pad_token_id))
        spans = [(encoded[i][1], len(encoded[i][0])) for i in chunk]
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        kl = span_kl(logits, reference.lm_logits(model, input_ids, attention_mask), spans)
        for i, value in zip(chunk, kl.tolist()):
            values[i] = value
    return values


def draw_samples(model, context: OnlineContext, queries: pd.DataFrame, seed: int,
                 shard: tuple[int, int] | None = None) -> pd.DataFrame:
    """The policy's responses to ``queries`` (prompt_id, prompt), scored:
    :data:`rrhf.sampling.generation.SAMPLE_COLUMNS`
    plus ``reward`` and ``gold_reward`` (NaN without a gold reward). With ``shard`` (index, count), only that
    shard's generation batches (:func:`rrhf.sampling.generation.generation_batches`)."""
    online = context.online
    responses = generate_responses(model, context.tokenizer, list(queries["prompt"]), online.sampler, shard=shard,
                                   **{**sampler_arguments(context.sampling, online.sampler), "seed": seed})
    samples = pd.DataFrame([(pid, prompt, k, text, online.sampler)
                            for pid, prompt, texts in zip(queries["prompt_id"], queries["prompt"], responses)
                            for k, text in enumerate(texts)], columns=SAMPLE_COLUMNS)
    samples["reward"] = score(context.reward_model, context.reward_tokenizer, list(samples["prompt"]),
                              list(samples["response"]), context.scoring.batch_size, context.scoring.max_length,
                              prompt_sharing=context.scoring.prompt_sharing)
    check_finite(samples, "online samples")
    samples["gold_reward"] = gold_rewards(samples, context.gold_source)
    return samples


def draw_round(trainer: Trainer, context: OnlineContext, queries: pd.DataFrame, seed: int,
               provided: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples, training set) of one sampling round over ``queries``: :func:`draw_samples` and
    :func:`round_training_set` with the policy as trained so far, each process on its share of the generation
    batches; both frames whole and alike in every process (the samples in query order, the set sorted by prompt)."""
    accelerator = trainer.accelerator
    shard = (accelerator.process_index, accelerator.num_processes) if accelerator.num_processes > 1 else None
    with trainer.generating() as model:
        samples = draw_samples(model, context, queries, seed, shard)
        frame = round_training_set(model, context, samples, provided) if len(samples) else None
    if shard is None:
        return samples, frame
    position = {prompt_id: i for i, prompt_id in enumerate(queries["prompt_id"])}
    samples = pd.DataFrame(gather_object(samples.to_dict("records")), columns=samples.columns)
    samples = (samples.assign(query=samples["prompt_id"].map(position))
               .sort_values(["query", "response_index"], kind="stable").drop(columns="query").reset_index(drop=True))
    frame = pd.DataFrame(gather_object([] if frame is None else frame.to_dict("records")))
    return samples, frame.sort_values(["prompt_id", "response_index"], kind="stable").reset_index(drop=True)


def round_training_set(model, context: OnlineContext, samples: pd.DataFrame,
                       provided: pd.DataFrame | None) -> pd.DataFrame:
    """One round's training set: the samples and the provided responses of their queries, each with its
    ``kl`` (KL(pi || rho), measured with and without +KL: the over-optimisation study plots against it) and
    ``training_reward`` = reward - kl_coef * kl (the reward itself without +KL)."""
    parts = [samples]
    if provided is not None:
        parts.append(provided[provided["prompt_id"].isin(set(samples["prompt_id"]))])
    frame = combine_parts(parts, "online sampling round")
    kl = response_kl(model, context.reference, context.tokenizer, list(frame["prompt"]), list(frame["response"]),
                     context.max_length, context.scoring.batch_size)
    return frame.assign(kl=kl, training_reward=frame["reward"] - context.online.kl_coef * pd.Series(kl))


def train_online_rrhf(policy: str, reward_model: str | dict[str, Any], train_data: str, output_dir: str,
                      rrhf: RRHF | dict[str, Any], online: OnlineSchedule | dict[str, Any],
                      sampling: Sampling | dict[str, Any], scoring: Scoring | dict[str, Any],
                      prompts: PromptSubset | dict[str, Any], precision: Precision | dict[str, Any],
                      provided: str | None = None, checkpoint: dict[str, Any] | None = None,
                      tracking: dict[str, Any] | None = None,
                      log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: online RRHF of ``policy`` on the selected training ``prompts``, with the ``rrhf`` block,
    sampling every ``online.steps_per_sample`` steps with ``online.sampler`` (its ``sampling`` settings) and
    scoring with ``scoring``; save it like :func:`rrhf.training.rrhf.train_rrhf` does, plus
    ``online_samples.parquet``.

    ``train_log.parquet`` rows also carry the sampling round their data came from and that round's mean
    sample reward, gold reward and KL. ``online_samples.parquet`` holds every drawn response with the
    optimisation step (0-based: the steps done before it) and round at which it was drawn, its reward,
    ``kl``, ``training_reward`` and ``gold_reward``. With ``checkpoint`` settings it saves a checkpoint at
    the end of a sampling round once one is due, and a restarted job resumes after the last saved round.
    """
    start_job(log_path, output_dir)
    rrhf, online_params = RRHF.coerce(rrhf), OnlineSchedule.coerce(online)
    sampling, scoring, precision = Sampling.coerce(sampling), Scoring.coerce(scoring), Precision.coerce(precision)
    params = rrhf.training
    queries = select_subset(read_parquet(train_data, ["prompt_id", "prompt"]), prompts, origin=train_data)
    queries = queries[["prompt_id", "prompt"]]
    provided_frame = read_parquet(provided, SCORED_COLUMNS)[SCORED_COLUMNS] if provided else None
    if provided_frame is not None:
        missing = sorted(set(queries["prompt_id"]) - set(provided_frame["prompt_id"]))
        if missing:
            raise ValueError(f"{provided}: no provided responses for {len(missing)} of the {len(queries)} selected "
                             f"prompts, e.g. {missing[:3]}; was it scored with another data.train_prompts?")
    model, tokenizer = load_causal_lm_for_training(policy)
    collate = query_collator(model, tokenizer, rrhf.max_tokens_per_forward, rrhf.prompt_sharing,
                             "rrhf.prompt_sharing", "online RRHF training")
    model = add_lora(model, params.lora)
    # Queries of k optimiser steps, over all training processes (each takes its share of a round's batches).
    processes = PartialState().num_processes
    per_window = online_params.steps_per_sample * params.batch_size * params.gradient_accumulation_steps * processes
    # A window short of a batch for every process joins the one before it (run_epochs needs one each).
    windows = query_windows(len(queries), per_window, params.epochs, params.seed,
                            params.batch_size * (processes - 1) + 1)
    accumulation = params.gradient_accumulation_steps  # each round ends with a step (Trainer.run_epochs)
    steps = sum(math.ceil(micro_batches_per_epoch(len(window), params.batch_size, processes) / accumulation)
                for window in windows)
    trainer = Trainer(model, params, precision, steps, "online rrhf", checkpoint, tracking=tracking,
                      output_dir=output_dir)
    with trainer.generating() as initial:  # rho, before any step (or resumed checkpoint); with LoRA: the adapters off
        reference = FrozenReference(initial)
    reward, reward_tokenizer = load_reward_model(reward_model, trainer.accelerator.device, precision.dtype)
    context = OnlineContext(tokenizer, reward, reward_tokenizer, reference, online_params, sampling, scoring,
                            params.max_length, gold_source(train_data))
    log.info("online RRHF of %s: %d queries, %d sampling rounds (every %d steps, %d queries each), %s sampling, "
             "kl_coef %s", policy, len(queries), len(windows), online_params.steps_per_sample, per_window,
             online_params.sampler, online_params.kl_coef)
    compute_loss = make_rrhf_loss(rrhf.rank_weight, rrhf.length_penalty, rrhf.ft_reduction)
    state = trainer.resume() or {"rounds": 0, "visited": 0, "seed": sampling.seed}
    drawn = [frame_from_json(state["drawn"])] if "drawn" in state else []
    visited, seed = state["visited"], state["seed"]
    for round_number, window in enumerate(windows):
        if round_number < state["rounds"]:
            continue
        step = len(trainer.rows)
        samples, frame = draw_round(trainer, context, queries.iloc[window], seed, provided_frame)
        seed += math.ceil(len(window) / sampling.batch_size)  # a fresh seed per generation batch
        sampled = frame["source"] == online_params.sampler
        summary = {"round": round_number, "sample_reward": float(frame.loc[sampled, "reward"].mean()),
                   "sample_gold_reward": float(samples["gold_reward"].mean()),
                   "sample_kl": float(frame.loc[sampled, "kl"].mean())}
        log.info("sampling round %d at step %d: %d responses for %d queries, reward %.4f, gold %.4f, kl %.4f",
                 round_number, step, int(sampled.sum()), len(window), summary["sample_reward"],
                 summary["sample_gold_reward"], summary["sample_kl"])
        drawn.append(frame[sampled].assign(step=step, round=round_number))
        examples = build_examples(frame.assign(reward=frame["training_reward"]), tokenizer, params.max_length)
        trainer.run_epochs(examples, [e.length for e in examples], collate, compute_loss, 1, params.seed + round_number,
                           annotate=lambda row: row.update(summary, epoch=(visited + row["epoch"] * len(window))
                                                           / len(queries)))
        visited += len(window)
        trainer.checkpoint(lambda: {"rounds": round_number + 1, "visited": visited, "seed": seed,
                                    "drawn": frame_to_json(pd.concat(drawn, ignore_index=True))})
    result = trainer.finish()
    samples = pd.concat(drawn, ignore_index=True)
    samples = samples[["step", "round", *SAMPLE_COLUMNS, "reward", "kl", "training_reward", "gold_reward"]]
    round_means = samples.groupby("round")[["reward", "gold_reward", "kl"]].mean()
    metrics = {**run_metrics(pd.DataFrame(result.rows)), "queries": len(queries), "rounds": len(windows),
               "responses_drawn": len(samples), "steps_per_sample": online_params.steps_per_sample,
               "kl_coef": online_params.kl_coef, "sampler": online_params.sampler, "rank_weight": rrhf.rank_weight,
               "length_penalty": rrhf.length_penalty, "ft_reduction": rrhf.ft_reduction}
    for column in round_means:
        metrics[f"sample_{column}_first_round"] = float(round_means[column].iloc[0])
        metrics[f"sample_{column}_last_round"] = float(round_means[column].iloc[-1])
    log.info("online RRHF done: %s", metrics)
    result.save(output_dir, tokenizer, {"stage": "train_online_rrhf", "policy": policy, "data": [train_data],
                                        "online": online_params.as_config(), "rrhf": rrhf.as_config(),
                                        DATASET_KEY: facts_of(train_data)},
                metrics, tables={"online_samples.parquet": samples})
    return metrics
