"""Reward scoring, and the training set of each setting (DESIGN.md §2)."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from rrhf.data import select_prompts
from rrhf.io import read_parquet, read_provenance, setup_logging, write_parquet
from rrhf.models import encode_pair, load_reward_model, resolve_device, usable_length
from rrhf.training import pad_batch

log = logging.getLogger("rrhf")
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "source", "reward"]


@torch.no_grad()
def score(reward_model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 32,
          max_length: int = 512, show_progress: bool = False) -> list[float]:
    """Reward of each (prompt, response) pair: the model's single logit on prompt + response + EOS.

    Sequences are sorted by length and scored in right-padded batches of
    ``batch_size``; rewards come back in the input order. Sequences longer than
    ``max_length`` (or than the model accepts) lose the start of their prompt.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"score: {len(prompts)} prompts but {len(responses)} responses")
    device = next(reward_model.parameters()).device
    max_length = usable_length(reward_model, max_length)
    encoded = [encode_pair(tokenizer, p, r, max_length)[0] for p, r in zip(prompts, responses)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    rewards = [0.0] * len(encoded)
    pad = tokenizer.pad_token_id
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="score", disable=not show_progress):
        chunk = order[start:start + batch_size]
        sequences = [encoded[i] for i in chunk]
        input_ids, attention_mask = pad_batch(sequences, pad)
        logits = reward_model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for i, value in zip(chunk, logits[:, 0].float().tolist()):
            rewards[i] = value
    return rewards


def check_finite(frame: pd.DataFrame, origin: str) -> None:
    """Raise naming the first row whose reward is NaN or infinite."""
    for row, value in enumerate(frame["reward"]):
        if not math.isfinite(value):
            item = frame.iloc[row]
            where = ", ".join(f"{key} {item[key]}" for key in ("prompt_id", "response_index") if key in item)
            raise ValueError(f"{origin}: reward {value} is not finite at row {row} ({where})")


def score_frame(frame: pd.DataFrame, reward_model_path: str, batch_size: int, max_length: int,
                device: str, origin: str) -> pd.DataFrame:
    """``frame`` (with prompt and response columns) plus a ``reward`` column; stops on a non-finite reward."""
    model, tokenizer = load_reward_model(reward_model_path, resolve_device(device))
    out = frame.copy()
    out["reward"] = score(model, tokenizer, list(frame["prompt"]), list(frame["response"]), batch_size,
                          max_length, show_progress=True)
    check_finite(out, origin)
    return out


def score_samples(samples: str, reward_model: str, output: str, batch_size: int, max_length: int,
                  device: str = "auto", log_path: str | None = None) -> None:
    """Stage entry point: rewards for a policy's sampled responses."""
    setup_logging(log_path)
    frame = read_parquet(samples, ["prompt_id", "prompt", "response_index", "response", "source"])
    scored = score_frame(frame, reward_model, batch_size, max_length, device, origin=samples)
    log.info("scored %d responses from %s: mean reward %.4f", len(scored), samples, scored["reward"].mean())
    write_parquet(scored, output, {"stage": "score_samples", "reward_model": reward_model,
                                   "samples": read_provenance(samples)})


def provided_responses(frame: pd.DataFrame) -> pd.DataFrame:
    """The dataset's chosen and rejected replies as rows: ``response_index`` 0 and 1, ``source`` chosen/rejected."""
    parts = []
    for index, source in enumerate(("chosen", "rejected")):
        part = frame[["prompt_id", "prompt"]].copy()
        part["response_index"] = index
        part["response"] = frame[source].to_numpy()
        part["source"] = source
        parts.append(part)
    return pd.concat(parts, ignore_index=True).sort_values(["prompt_id", "response_index"], kind="stable")


def score_provided(train_data: str, reward_model: str, output: str, limit: int | None, seed: int,
                   batch_size: int, max_length: int, device: str = "auto", shard: tuple[int, int] | None = None,
                   log_path: str | None = None) -> None:
    """Stage entry point: rewards for the dataset's chosen and rejected replies of the selected training
    prompts (or one shard of them)."""
    setup_logging(log_path)
    frame = select_prompts(read_parquet(train_data, ["prompt_id", "prompt", "chosen", "rejected"]), limit, seed,
                           shard)
    scored = score_frame(provided_responses(frame), reward_model, batch_size, max_length, device, origin=train_data)
    log.info("scored %d provided responses: chosen beat rejected on %.1f%% of prompts", len(scored),
             100 * _chosen_win_rate(scored))
    write_parquet(scored.reset_index(drop=True), output,
                  {"stage": "score_provided", "reward_model": reward_model, "limit": limit, "seed": seed,
                   "shard": shard})


def _chosen_win_rate(scored: pd.DataFrame) -> float:
    wide = scored.pivot(index="prompt_id", columns="source", values="reward")
    return float((wide["chosen"] > wide["rejected"]).mean())


def assemble_training_set(sampled: str | None, provided: str | None, output: str, setting: str,
                          log_path: str | None = None) -> None:
    """Stage entry point: one setting's training set, the scored samples and/or the provided replies.

    Provided replies follow the sampled ones of the same prompt (``response_index``
    continues after the samples'). Only prompts present in every part are kept.
    """
    setup_logging(log_path)
    parts = [read_parquet(path, SCORED_COLUMNS) for path in (sampled, provided) if path]
    if not parts:
        raise ValueError(f"setting {setting!r} has neither sampled nor provided responses")
    common = set.intersection(*(set(p["prompt_id"]) for p in parts))
    if not common:
        raise ValueError(f"setting {setting!r}: {sampled} and {provided} share no prompt_id")
    dropped = set.union(*(set(p["prompt_id"]) for p in parts)) - common
    if dropped:
        log.warning("setting %s: dropped %d prompts missing from one part, e.g. %s", setting, len(dropped),
                    sorted(dropped)[:3])
    parts = [p[p["prompt_id"].isin(common)] for p in parts]
    if len(parts) == 2:
        offset = int(parts[0]["response_index"].max()) + 1
        parts[1] = parts[1].assign(response_index=parts[1]["response_index"] + offset)
    frame = pd.concat(parts, ignore_index=True).sort_values(["prompt_id", "response_index"], kind="stable")
    frame = frame[SCORED_COLUMNS].reset_index(drop=True)
    log.info("setting %s: %d prompts, %d responses, reward mean %.4f", setting, len(common), len(frame),
             frame["reward"].mean())
    write_parquet(frame, output, {"stage": "assemble_training_set", "setting": setting,
                                  "sampled": sampled, "provided": provided})


def training_set_stats(frame: pd.DataFrame) -> dict[str, Any]:
    """Mean and std of all rewards, and the mean over prompts of the best reward (Table 6's train columns)."""
    return {"train_reward_mean": float(frame["reward"].mean()),
            "train_reward_std": float(frame["reward"].std(ddof=0)),
            "train_reward_max": float(frame.groupby("prompt_id")["reward"].max().mean())}
