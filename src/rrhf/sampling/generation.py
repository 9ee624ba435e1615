"""Sampling K responses per prompt from a policy: beam, diverse beam or top-p."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from rrhf.config.blocks import PromptSubset, Sampling
from rrhf.data.dataset_facts import DATASET_KEY, facts_of
from rrhf.data.preference_pairs import select_subset
from rrhf.io import read_parquet, setup_logging, write_parquet
from rrhf.models.loading import load_causal_lm, model_positions, resolve_device
from rrhf.models.token_spans import prompt_token_ids, sequence_start, start_and_cut
from rrhf.sampling.diverse_beam import group_beam_search

METHODS = ("greedy", "beam", "diverse_beam", "top_p")
SAMPLE_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "source"]
log = logging.getLogger("rrhf")


def _generate_batch(model, tokenizer, encoded, method: str, num_responses: int, max_new_tokens: int,
                    num_beams: int, num_beam_groups: int, diversity_penalty: float, top_p: float,
                    temperature: float) -> torch.Tensor:
    """(batch * num_responses, prompt_len + L) token ids for one left-padded batch."""
    common = dict(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                  max_new_tokens=max_new_tokens)
    if method in ("beam", "diverse_beam"):
        groups = num_beam_groups if method == "diverse_beam" else 1
        penalty = diversity_penalty if method == "diverse_beam" else 0.0
        return group_beam_search(model, encoded["input_ids"], encoded["attention_mask"], num_beams=num_beams,
                                 num_beam_groups=groups, diversity_penalty=penalty,
                                 num_return_sequences=num_responses, **common)
    if method == "greedy":
        if num_responses != 1:
            raise ValueError("greedy decoding gives one response per prompt; set num_responses: 1")
        return model.generate(**encoded, do_sample=False, num_beams=1, **common)
    return model.generate(**encoded, do_sample=True, top_p=top_p, temperature=temperature, top_k=0,
                          num_return_sequences=num_responses, **common)


def generation_batches(prompts: list[str], batch_size: int,
                       shard: tuple[int, int] | None = None) -> list[tuple[int, list[int]]]:
    """(batch number, prompt indices) of each generation batch: prompts sorted by length (stable), cut into
    batches of ``batch_size``. With ``shard=(i, n)`` only batches i, i + n, i + 2n, ...: a shard runs whole
    batches of the unsharded run, with their numbers (their seeds), so sharded output equals unsharded."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    batches = list(enumerate(order[start:start + batch_size] for start in range(0, len(order), batch_size)))
    if shard is None:
        return batches
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count} does not exist")
    return batches[index::count]


def prompt_budget(model, max_new_tokens: int) -> int | None:
    """Most prompt tokens that leave room for ``max_new_tokens`` within the model's positions (None when the
    config names no limit); raises when ``max_new_tokens`` alone fills them."""
    limit = model_positions(model)
    if limit is None:
        return None
    if max_new_tokens >= limit:
        raise ValueError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt: the model has {limit} "
                         "positions (config n_positions / max_position_embeddings) for prompt + response")
    return limit - max_new_tokens


def encode_prompts(tokenizer, texts: list[str], max_prompt_tokens: int | None):
    """(left-padded batch of ``input_ids`` and ``attention_mask``, each (n, longest kept prompt), number of
    prompts cut): each prompt starts as the tokenizer starts a text (LLaMA's BOS;
    :func:`rrhf.models.token_spans.sequence_start`), and one longer than ``max_prompt_tokens`` keeps its last
    tokens after that start (the question being answered), as scoring and training cut theirs."""
    start = sequence_start(tokenizer)
    ids = prompt_token_ids(tokenizer, texts)
    cut = 0 if max_prompt_tokens is None else sum(len(start) + len(row) > max_prompt_tokens for row in ids)
    ids = [start_and_cut(tokenizer, row, max_prompt_tokens) for row in ids]
    return tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt"), cut


@torch.no_grad()
def generate_responses(model, tokenizer, prompts: list[str], method: str, *, num_responses: int = 4,
                       max_new_tokens: int = 128, num_beams: int = 4, num_beam_groups: int = 4,
                       diversity_penalty: float = 1.0, top_p: float = 1.0, temperature: float = 0.8,
                       seed: int = 0, batch_size: int = 8, shard: tuple[int, int] | None = None,
                       show_progress: bool = False, max_prompt_tokens: int | None = None) -> list[list[str]]:
    """The ``num_responses`` responses of each prompt, with the prompt removed.

    ``method`` is ``greedy`` (one response), ``beam`` (``num_beams`` beams), ``diverse_beam`` (``num_beams``
    beams in ``num_beam_groups`` groups, Hamming ``diversity_penalty``) or
    ``top_p`` (nucleus sampling at ``temperature``). Beam methods return the
    responses best first. Prompts are sorted by length and generated in
    left-padded batches of ``batch_size``; sampling batch i is seeded with
    ``seed + i``, so the same inputs give the same outputs. With ``shard``, only
    that shard's batches run (:func:`generation_batches`) and the other prompts
    get no responses. Responses are decoded with ``skip_special_tokens=True``.
    A prompt longer than the model's positions minus ``max_new_tokens`` (or than ``max_prompt_tokens``, config
    ``data.max_prompt_tokens``) keeps its last tokens (:func:`encode_prompts`); how many were cut is logged.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sampling method {method!r}; expected one of {METHODS}")
    if tokenizer.padding_side != "left":
        raise ValueError("generate_responses needs a tokenizer with padding_side='left'")
    device = next(model.parameters()).device
    results: list[list[str]] = [[] for _ in prompts]
    batches = generation_batches(prompts, batch_size, shard)
    budget, cut = prompt_budget(model, max_new_tokens), 0
    reason = None if budget is None else (f"the model's {budget + max_new_tokens} positions hold prompt + "
                                          f"max_new_tokens {max_new_tokens}")
    if max_prompt_tokens is not None and (budget is None or max_prompt_tokens < budget):
        budget, reason = max_prompt_tokens, f"data.max_prompt_tokens {max_prompt_tokens}"
    for batch_number, chunk in tqdm(batches, desc=f"sample {method}", disable=not show_progress):
        encoded, batch_cut = encode_prompts(tokenizer, [prompts[i] for i in chunk], budget)
        encoded, cut = encoded.to(device), cut + batch_cut
        torch.manual_seed(seed + batch_number)
        output = _generate_batch(model, tokenizer, encoded, method, num_responses, max_new_tokens, num_beams,
                                 num_beam_groups, diversity_penalty, top_p, temperature)
        texts = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        for position, index in enumerate(chunk):
            results[index] = texts[position * num_responses:(position + 1) * num_responses]
    if cut:
        log.warning("cut %d of %d prompts to their last %d tokens: %s", cut, sum(len(chunk) for _, chunk in batches),
                    budget, reason)
    return results


def sampler_arguments(sampling: Sampling, sampler: str) -> dict[str, Any]:
    """:func:`generate_responses`' keyword arguments for ``sampler`` under the ``sampling`` block: the sampler's
    parameters with the sampling seed and batch size."""
    return {**sampling.sampler(sampler).as_config(), "seed": sampling.seed, "batch_size": sampling.batch_size}


def sample_responses(policy_path: str, train_data: str, output: str, method: str,
                     sampling: Sampling | dict[str, Any], prompts: PromptSubset | dict[str, Any],
                     device: str = "auto", dtype: str = "auto", shard: tuple[int, int] | None = None,
                     log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: sample responses with ``method`` (a sampler of the ``sampling`` block) for the selected
    training ``prompts`` (or one shard of them: whole generation batches of the unsharded run, so the gathered
    shards equal the unsharded output).

    Writes one row per response, sorted by ``prompt_id, response_index``.
    """
    setup_logging(log_path)
    params, prompts = sampler_arguments(Sampling.coerce(sampling), method), PromptSubset.coerce(prompts)
    frame = select_subset(read_parquet(train_data, ["prompt_id", "prompt"]), prompts, origin=train_data)
    model, tokenizer = load_causal_lm(policy_path, resolve_device(device), dtype)
    log.info("sampling %s responses from %s for %d prompts with %s", method, policy_path, len(frame), params)
    responses = generate_responses(model, tokenizer, list(frame["prompt"]), method, shard=shard, show_progress=True,
                                   max_prompt_tokens=prompts.max_tokens, **params)
    rows = [(pid, prompt, k, text, method)
            for pid, prompt, texts in zip(frame["prompt_id"], frame["prompt"], responses)
            for k, text in enumerate(texts)]
    samples = pd.DataFrame(rows, columns=SAMPLE_COLUMNS).sort_values(["prompt_id", "response_index"],
                                                                     ignore_index=True)
    write_parquet(samples, output,
                  {"stage": "sample_responses", "policy": policy_path, "method": method, "params": params,
                   "limit": prompts.limit, "selection_seed": prompts.seed, "shard": shard,
                   DATASET_KEY: facts_of(train_data)})
    log.info("wrote %d responses to %s", len(samples), output)
    return samples
