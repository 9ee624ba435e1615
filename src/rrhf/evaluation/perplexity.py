"""Perplexity of responses under the evaluation LM, each prompt computed once for its responses."""

from __future__ import annotations

import logging
import math

import torch

from rrhf.batching.prompt_sharing import fill_batches, group_by_prompt, sharing_decision
from rrhf.batching.query_batches import (
    QueryExample,
    causal_lm_sharing_problem,
    collate_queries,
    keeps_logits,
    response_logprobs,
)
from rrhf.models.loading import usable_length
from rrhf.models.token_spans import cut_pair, prompt_token_ids, response_token_ids, sequence_start

log = logging.getLogger("rrhf")
PERPLEXITY_BATCH_SIZE = 16  # responses per forward of the evaluation LM


@torch.no_grad()
def response_nll(model, tokenizer, prompts: list[str], responses: list[str], max_length: int = 512,
                 batch_size: int = PERPLEXITY_BATCH_SIZE, prompt_sharing: str = "auto") -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each response given its prompt, no EOS added.

    A pair longer than ``max_length`` (capped at the model's positions) loses the start of its prompt
    (:func:`rrhf.models.token_spans.cut_pair`), each pair on its own; how many were cut is logged. Prompts and responses
    are tokenized once, in two batched calls. Responses with the same (cut) prompt run packed after it, the
    prompt computed once, where ``prompt_sharing`` (config ``scoring.prompt_sharing``) and the model allow
    it; batches hold at most ``batch_size`` responses, sorted by length."""
    device = next(model.parameters()).device
    max_length = usable_length(model, max_length)
    prompt_ids, response_ids = prompt_token_ids(tokenizer, prompts), response_token_ids(tokenizer, responses)
    start = sequence_start(tokenizer)
    encoded = [cut_pair(p, r, max_length, start) for p, r in zip(prompt_ids, response_ids)]
    cut = sum(len(start) + len(p) + len(r) > max_length for p, r in zip(prompt_ids, response_ids))
    if cut:
        log.warning("perplexity: cut %d of %d prompts from the left to fit prompt + response in %d tokens", cut,
                    len(encoded), max_length)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    groups = [(prompt, [i for i in members if len(encoded[i][0]) > encoded[i][1]])
              for prompt, members in group_by_prompt(encoded)]
    groups = sorted((g for g in groups if g[1]), key=lambda g: len(g[0]) + max(len(encoded[i][0]) for i in g[1]))
    packed = any(len(members) > 1 for _, members in groups) and sharing_decision(
        prompt_sharing, "scoring.prompt_sharing", lambda: causal_lm_sharing_problem(model), "perplexity")
    keep = keeps_logits(model)
    for indices in fill_batches([len(members) for _, members in groups], batch_size):
        batch = [groups[g] for g in indices]
        examples = [QueryExample(prompt, [encoded[i][0][len(prompt):] for i in members], [0.0] * len(members))
                    for prompt, members in batch]
        tensors = collate_queries(examples, tokenizer.pad_token_id, 1 << 30, float("inf"), packed, keep)
        logprobs, mask = response_logprobs(model, {k: v.to(device) for k, v in tensors.items()})
        sums, counts = (logprobs * mask).sum(-1).tolist(), mask.sum(-1).tolist()
        for b, (_, members) in enumerate(batch):
            for k, i in enumerate(members):
                out[i] = (-sums[b][k], int(counts[b][k]))
    return out



def perplexity(nll_and_counts: list[tuple[float, int]]) -> float:
    """exp(total NLL / total tokens) over all responses (token-weighted); NaN when there are no tokens."""
    tokens = sum(n for _, n in nll_and_counts)
    return math.exp(sum(nll for nll, _ in nll_and_counts) / tokens) if tokens else float("nan")
