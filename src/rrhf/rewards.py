"""Reward scoring of sampled and provided responses."""

from __future__ import annotations

import logging

import pandas as pd
import torch
from tqdm.auto import tqdm

from rrhf.data import select_prompts
from rrhf.io import read_parquet, read_provenance, setup_logging, write_parquet
from rrhf.models import encode_pair, load_reward_model, resolve_device, usable_length
from rrhf.training import pad_batch
from rrhf.training_sets import check_rewards

log = logging.getLogger("rrhf")


def reward_special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """(ids before, ids after) the text of a reward model's input.

    An encoder's tokenizer (one with a ``cls_token``: BERT, RoBERTa, DeBERTa)
    gives ([CLS], [SEP]), as its classifier pools the first token; a decoder's
    (GPT-2, LLaMA, the project's BPE) gives ([], []), as its classifier reads
    the last real token, the EOS that :func:`rrhf.models.encode_pair` appends.
    """
    if tokenizer.cls_token_id is None:
        return [], []
    return [tokenizer.cls_token_id], [] if tokenizer.sep_token_id is None else [tokenizer.sep_token_id]


def encode_for_reward(tokenizer, prompt: str, response: str, max_length: int) -> list[int]:
    """Token ids, at most ``max_length`` of them, that a reward model scores for one (prompt, response).

    Decoder: ``encode_pair``'s prompt + response + EOS, exactly. Encoder:
    [CLS] + prompt + response + [SEP] (no EOS), the text cut as ``encode_pair``
    cuts it (the prompt from the left) to fit ``max_length`` with the two
    special tokens. Training (``train_reward``) and scoring use this one encoding.
    """
    before, after = reward_special_tokens(tokenizer)
    if not before and not after:
        return encode_pair(tokenizer, prompt, response, max_length)[0]
    ids, _ = encode_pair(tokenizer, prompt, response, max_length - len(before) - len(after), add_eos=False)
    return before + ids + after


@torch.no_grad()
def score(reward_model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 32,
          max_length: int = 512, show_progress: bool = False) -> list[float]:
    """Reward of each (prompt, response) pair: the model's single logit on :func:`encode_for_reward`'s ids
    (prompt + response + EOS for a decoder, [CLS] prompt + response [SEP] for an encoder).

    Sequences are sorted by length and scored in right-padded batches of
    ``batch_size``; rewards come back in the input order. Sequences longer than
    ``max_length`` (or than the model accepts) lose the start of their prompt.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"score: {len(prompts)} prompts but {len(responses)} responses")
    device = next(reward_model.parameters()).device
    max_length = usable_length(reward_model, max_length)
    encoded = [encode_for_reward(tokenizer, p, r, max_length) for p, r in zip(prompts, responses)]
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
    """Raise naming ``origin`` and every row (up to five, then a count) whose reward is NaN or infinite:
    a reward model that gives NaN stops scoring instead of writing it (:func:`rrhf.training_sets.check_rewards`)."""
    check_rewards(frame.reset_index(drop=True), origin)


def score_frame(frame: pd.DataFrame, reward_model_path: str, batch_size: int, max_length: int,
                device: str, origin: str, dtype: str = "auto") -> pd.DataFrame:
    """``frame`` (with prompt and response columns) plus a ``reward`` column; stops on a non-finite reward."""
    model, tokenizer = load_reward_model(reward_model_path, resolve_device(device), dtype)
    out = frame.copy()
    out["reward"] = score(model, tokenizer, list(frame["prompt"]), list(frame["response"]), batch_size,
                          max_length, show_progress=True)
    check_finite(out, origin)
    return out


def score_samples(samples: str, reward_model: str, output: str, batch_size: int, max_length: int,
                  device: str = "auto", dtype: str = "auto", log_path: str | None = None) -> None:
    """Stage entry point: rewards for a policy's sampled responses."""
    setup_logging(log_path)
    frame = read_parquet(samples, ["prompt_id", "prompt", "response_index", "response", "source"])
    scored = score_frame(frame, reward_model, batch_size, max_length, device, origin=samples, dtype=dtype)
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
                   batch_size: int, max_length: int, device: str = "auto", dtype: str = "auto",
                   shard: tuple[int, int] | None = None, log_path: str | None = None) -> None:
    """Stage entry point: rewards for the dataset's chosen and rejected replies of the selected training
    prompts (or one shard of them)."""
    setup_logging(log_path)
    frame = select_prompts(read_parquet(train_data, ["prompt_id", "prompt", "chosen", "rejected"]), limit, seed,
                           shard, origin=train_data, key="data.train_prompts")
    scored = score_frame(provided_responses(frame), reward_model, batch_size, max_length, device,
                         origin=train_data, dtype=dtype)
    log.info("scored %d provided responses: chosen beat rejected on %.1f%% of prompts", len(scored),
             100 * _chosen_win_rate(scored))
    write_parquet(scored.reset_index(drop=True), output,
                  {"stage": "score_provided", "reward_model": reward_model, "limit": limit, "seed": seed,
                   "shard": shard})


def _chosen_win_rate(scored: pd.DataFrame) -> float:
    wide = scored.pivot(index="prompt_id", columns="source", values="reward")
    return float((wide["chosen"] > wide["rejected"]).mean())
