"""The reference model's log-probability of every reply of a training set, computed once and cached.

DPO, IPO, R-DPO and KTO compare the policy with the reference rho (the initial policy). Rather than hold a second
model in memory while training, a rule runs rho once over the training set and writes, per reply, the summed
log-probability of its tokens (EOS included) and their count. Replies are encoded, cut and batched exactly as
RRHF training encodes them (:mod:`rrhf.batching.query_batches`): each prompt is computed once, packed with its
replies where the model can share prompts, so the training loop's log-probabilities and these refer to the same
tokens.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from rrhf.batching.query_batches import build_examples, query_collator, response_logprobs
from rrhf.io import read_parquet, start_job, write_parquet
from rrhf.models.loading import load_causal_lm, resolve_device

log = logging.getLogger("rrhf")
REFERENCE_COLUMNS = ["prompt_id", "response_index", "reference_logp", "n_tokens"]


@torch.no_grad()
def sequence_logprobs(model, collate, examples: list, batch_size: int) -> tuple[list[list[float]], list[list[int]]]:
    """(summed log-probability, token count) of every reply of ``examples`` (QueryExample), in their order,
    ``batch_size`` queries per collated batch."""
    sums, counts = [], []
    for start in tqdm(range(0, len(examples), batch_size), desc="reference log-probabilities", unit="batch"):
        chunk = examples[start:start + batch_size]
        token_logprobs, mask = response_logprobs(model, collate(chunk))
        summed, lengths = (token_logprobs * mask).sum(-1), mask.sum(-1)
        for row, example in enumerate(chunk):
            width = len(example.responses)
            sums.append([float(value) for value in summed[row, :width]])
            counts.append([int(value) for value in lengths[row, :width]])
    return sums, counts


def reference_frame(scored: pd.DataFrame, sums: list[list[float]], counts: list[list[int]]) -> pd.DataFrame:
    """:data:`REFERENCE_COLUMNS` for a scored set whose prompts (sorted by prompt_id, replies by response_index,
    as :func:`build_examples` orders them) got ``sums`` and ``counts``."""
    ordered = scored.sort_values(["prompt_id", "response_index"], kind="stable")
    flat_sums = [value for row in sums for value in row]
    flat_counts = [value for row in counts for value in row]
    if len(flat_sums) != len(ordered):
        raise ValueError(f"reference log-probabilities: {len(flat_sums)} values for {len(ordered)} replies")
    return pd.DataFrame({"prompt_id": ordered["prompt_id"].to_numpy(),
                         "response_index": ordered["response_index"].to_numpy(),
                         "reference_logp": flat_sums, "n_tokens": flat_counts})[REFERENCE_COLUMNS]


def compute_reference_logprobs(reference: str, scored_path: str, output: str, settings: dict[str, Any],
                               device: str, log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: rho's (``reference``, a model folder) log-probability of every reply of the scored set
    (or a method's examples) at ``scored_path``, on ``device`` (config ``device``: auto, cpu, cuda, ...), with
    ``settings`` {max_length, max_tokens_per_forward, prompt_sharing, batch_size} as the method's training uses
    them; written to ``output`` (Parquet, :data:`REFERENCE_COLUMNS`)."""
    start_job(log_path, output)
    scored = read_parquet(scored_path, ["prompt_id", "prompt", "response_index", "response", "reward"])
    device = resolve_device(device)
    model, tokenizer = load_causal_lm(reference, device)
    collate = query_collator(model, tokenizer, settings["max_tokens_per_forward"], settings["prompt_sharing"],
                             "prompt_sharing", "the reference log-probabilities")
    examples = build_examples(scored, tokenizer, settings["max_length"])
    sums, counts = sequence_logprobs(model, lambda chunk: {k: v.to(device) for k, v in collate(chunk).items()},
                                     examples, settings["batch_size"])
    frame = reference_frame(scored, sums, counts)
    write_parquet(frame, output, {"stage": "reference_logprobs", "reference": reference, "scored": scored_path})
    log.info("reference log-probabilities of %d replies of %d prompts: mean %.3f per reply", len(frame),
             len(examples), frame["reference_logp"].mean())
    return frame
