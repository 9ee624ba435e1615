"""Reward scoring of sampled and provided responses."""

from __future__ import annotations

import logging
import weakref
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from rrhf.batching.prompt_sharing import sharing_decision
from rrhf.config.blocks import PromptSubset, Scoring
from rrhf.data.dataset_facts import DATASET_KEY, facts_of
from rrhf.data.preference_pairs import select_subset
from rrhf.io import read_parquet, read_provenance, setup_logging, write_parquet
from rrhf.models.loading import load_reward_model, resolve_device, usable_length
from rrhf.models.token_spans import cut_pair, encode_pair, prompt_token_ids, response_token_ids
from rrhf.padding import pad_batch
from rrhf.scoring.packed_rewards import packed_scores, reward_reader, reward_sharing_problem
from rrhf.scoring.training_sets import check_rewards

log = logging.getLogger("rrhf")


def reward_special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """(ids before, ids after) the text of a reward model's input.

    An encoder's tokenizer (one with a ``cls_token``: BERT, RoBERTa, DeBERTa)
    gives ([CLS], [SEP]), as its classifier pools the first token; a decoder's
    (GPT-2, LLaMA, the project's BPE) gives ([], []), as its classifier reads
    the last real token, the EOS that :func:`rrhf.models.token_spans.encode_pair` appends.
    """
    if tokenizer.cls_token_id is None:
        return [], []
    return [tokenizer.cls_token_id], [] if tokenizer.sep_token_id is None else [tokenizer.sep_token_id]


def encode_for_reward(tokenizer, prompt: str, response: str, max_length: int) -> list[int]:
    """Token ids, at most ``max_length`` of them, that a reward model scores for one (prompt, response).

    Decoder: ``encode_pair``'s [start] + prompt + response + EOS, exactly ([start] is what the tokenizer puts
    first, e.g. LLaMA's BOS). Encoder: [CLS] + prompt + response + [SEP] (no EOS), the text cut as
    ``encode_pair`` cuts it (the prompt from the left) to fit ``max_length`` with the two special tokens.
    Training (``train_reward``) and scoring use this one encoding.
    """
    before, after = reward_special_tokens(tokenizer)
    if not before and not after:
        return encode_pair(tokenizer, prompt, response, max_length)[0]
    prompt_ids, response_ids = prompt_token_ids(tokenizer, [prompt])[0], response_token_ids(tokenizer, [response])[0]
    ids, _ = cut_pair(prompt_ids, response_ids, max_length - len(after), before)
    return ids + after


def encode_for_sharing(tokenizer, prompts: list[str], responses: list[str],
                       max_length: int) -> list[tuple[list[int], int]]:
    """(:func:`encode_for_reward`'s ids, where the response starts) of each pair; the start is 0 for an
    encoder's input, which shares nothing."""
    before, after = reward_special_tokens(tokenizer)
    if before or after:
        return [(encode_for_reward(tokenizer, p, r, max_length), 0) for p, r in zip(prompts, responses)]
    return [encode_pair(tokenizer, p, r, max_length) for p, r in zip(prompts, responses)]


_SHARING: "weakref.WeakKeyDictionary[torch.nn.Module, dict[str, bool]]" = weakref.WeakKeyDictionary()


def shares_prompts(reward_model, tokenizer, prompt_sharing: str) -> bool:
    """Whether ``reward_model`` scores packed rows under config ``scoring.prompt_sharing`` = ``prompt_sharing``
    (:func:`rrhf.batching.prompt_sharing.sharing_decision`); decided, probed and logged once per model and mode."""
    decided = _SHARING.setdefault(reward_model, {})
    if prompt_sharing not in decided:
        decided[prompt_sharing] = sharing_decision(prompt_sharing, "scoring.prompt_sharing",
                                                   lambda: reward_sharing_problem(reward_model, tokenizer),
                                                   "reward scoring")
    return decided[prompt_sharing]


@torch.no_grad()
def score(reward_model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 32,
          max_length: int = 512, show_progress: bool = False, prompt_sharing: str = "auto") -> list[float]:
    """Reward of each (prompt, response) pair: the model's single logit on :func:`encode_for_reward`'s ids
    (prompt + response + EOS for a decoder, [CLS] prompt + response [SEP] for an encoder).

    When a prompt has several responses and the model can share prompts (``prompt_sharing``: auto or
    packed), its responses are scored in one packed row with the prompt computed once
    (:func:`rrhf.scoring.packed_rewards.packed_scores`, at most ``batch_size`` responses per forward); otherwise
    sequences are sorted by length and scored in right-padded batches of ``batch_size``. The same rewards
    either way, to float tolerance, in the input order. Sequences longer than ``max_length`` (or than the
    model accepts) lose the start of their prompt, each pair on its own, so a reward never depends on the
    other responses scored with it. A pair given more than once is scored once, so equal pairs get equal rewards
    (in a packed row two copies of a reply sit at different positions, and float rounding could tell them apart).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"score: {len(prompts)} prompts but {len(responses)} responses")
    given = list(zip(prompts, responses))
    distinct = list(dict.fromkeys(given))
    if len(distinct) < len(given):
        reward_of = dict(zip(distinct, score(reward_model, tokenizer, [p for p, _ in distinct],
                                             [r for _, r in distinct], batch_size, max_length, show_progress,
                                             prompt_sharing)))
        return [reward_of[pair] for pair in given]
    device = next(reward_model.parameters()).device
    max_length = usable_length(reward_model, max_length)
    pairs = encode_for_sharing(tokenizer, list(prompts), list(responses), max_length)
    pad = tokenizer.pad_token_id

    def progress(items):
        return tqdm(items, desc="score", disable=not show_progress)

    if len(set(prompts)) < len(prompts) and shares_prompts(reward_model, tokenizer, prompt_sharing):
        return packed_scores(reward_model, reward_reader(reward_model), pairs, pad, batch_size, progress)
    encoded = [ids for ids, _ in pairs]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    rewards = [0.0] * len(encoded)
    for start in progress(range(0, len(order), batch_size)):
        chunk = order[start:start + batch_size]
        input_ids, attention_mask = pad_batch([encoded[i] for i in chunk], pad)
        logits = reward_model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        for i, value in zip(chunk, logits[:, 0].float().tolist()):
            rewards[i] = value
    return rewards


def check_finite(frame: pd.DataFrame, origin: str) -> None:
    """Raise naming ``origin`` and every row (up to five, then a count) whose reward is NaN or infinite:
    a reward model that gives NaN stops scoring instead of writing it
    (:func:`rrhf.scoring.training_sets.check_rewards`)."""
    check_rewards(frame.reset_index(drop=True), origin)


def score_frame(frame: pd.DataFrame, reward_model_path: str | dict[str, Any], scoring: Scoring, device: str,
                origin: str, dtype: str) -> pd.DataFrame:
    """``frame`` (with prompt and response columns) plus a ``reward`` column (:func:`score` with the ``scoring``
    block); stops on a non-finite reward."""
    model, tokenizer = load_reward_model(reward_model_path, resolve_device(device), dtype)
    out = frame.copy()
    out["reward"] = score(model, tokenizer, list(frame["prompt"]), list(frame["response"]), scoring.batch_size,
                          scoring.max_length, show_progress=True, prompt_sharing=scoring.prompt_sharing)
    check_finite(out, origin)
    return out


def score_samples(samples: str, reward_model: str | dict[str, Any], output: str, scoring: Scoring | dict[str, Any],
                  device: str = "auto", dtype: str = "auto", log_path: str | None = None) -> None:
    """Stage entry point: rewards for a policy's sampled responses, with the ``scoring`` block (each prompt
    computed once where the reward model allows it: ``scoring.prompt_sharing``, see :func:`score`)."""
    setup_logging(log_path)
    frame = read_parquet(samples, ["prompt_id", "prompt", "response_index", "response", "source"])
    scored = score_frame(frame, reward_model, Scoring.coerce(scoring), device, origin=samples, dtype=dtype)
    log.info("scored %d responses from %s: mean reward %.4f", len(scored), samples, scored["reward"].mean())
    write_parquet(scored, output, {"stage": "score_samples", "reward_model": reward_model,
                                   "samples": read_provenance(samples), DATASET_KEY: facts_of(samples)})


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


def score_provided(train_data: str, reward_model: str | dict[str, Any], output: str,
                   prompts: PromptSubset | dict[str, Any], scoring: Scoring | dict[str, Any], device: str = "auto",
                   dtype: str = "auto", shard: tuple[int, int] | None = None, log_path: str | None = None) -> None:
    """Stage entry point: rewards for the dataset's chosen and rejected replies of the selected training
    ``prompts`` (or one shard of them), with the ``scoring`` block."""
    setup_logging(log_path)
    prompts = PromptSubset.coerce(prompts)
    frame = select_subset(read_parquet(train_data, ["prompt_id", "prompt", "chosen", "rejected"]), prompts,
                          origin=train_data, shard=shard)
    scored = score_frame(provided_responses(frame), reward_model, Scoring.coerce(scoring), device,
                         origin=train_data, dtype=dtype)
    log.info("scored %d provided responses: chosen beat rejected on %.1f%% of prompts", len(scored),
             100 * _chosen_win_rate(scored))
    write_parquet(scored.reset_index(drop=True), output,
                  {"stage": "score_provided", "reward_model": reward_model,
                   "limit": prompts.limit, "seed": prompts.seed, "shard": shard,
                   DATASET_KEY: facts_of(train_data)})


def _chosen_win_rate(scored: pd.DataFrame) -> float:
    wide = scored.pivot(index="prompt_id", columns="source", values="reward")
    return float((wide["chosen"] > wide["rejected"]).mean())
