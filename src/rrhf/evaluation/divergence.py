"""How far an evaluated policy pi has moved from its initial policy rho: the exact KL(pi || rho) of its replies.

KL(x, y) = sum over the reply's tokens t of sum_v pi(v | x, y_<t) (log pi(v | x, y_<t) - log rho(v | x, y_<t)):
the full-vocabulary KL of the two models' next-token distributions at each reply position, summed over the
reply (no EOS added), the reply tokenized as the perplexity tokenizes it
(:func:`rrhf.evaluation.perplexity.response_nll`).
"""

from __future__ import annotations

import logging

import torch

from rrhf.batching.query_batches import QueryExample, chunk_inputs, collate_queries, keeps_logits
from rrhf.models.loading import usable_length
from rrhf.models.token_spans import cut_pair, next_token_kl, prompt_token_ids, response_token_ids, sequence_start

log = logging.getLogger("rrhf")
KL_BATCH_SIZE = 16  # replies per forward of each model


def token_kl(policy_logits: torch.Tensor, reference_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The exact KL(pi || rho) summed over the masked positions of each sequence.

    Args:
        policy_logits: logits of pi, shape (batch_size, sequence_length, vocab_size); position t holds the
            logits of the distribution being compared (for a reply token, those at the token before it).
        reference_logits: logits of rho at the same positions, same shape.
        mask: (batch_size, sequence_length) bool, true where a position counts (a reply token), false on the
            prompt and padding, whose logits are never read (they may be anything, even NaN).

    Returns:
        (batch_size,) float32: for each sequence, the sum over its masked positions t of
        sum_v pi_t(v) (log pi_t(v) - log rho_t(v)), pi_t = softmax(policy_logits[b, t]); 0 where nothing is
        masked. Each term is >= 0 (clamped against float rounding), so the sum is 0 exactly when pi = rho at
        every masked position. The log-softmax runs in float32 on the masked positions only.
    """
    if policy_logits.shape != reference_logits.shape or policy_logits.shape[:2] != mask.shape:
        raise ValueError(f"token_kl: logits {tuple(policy_logits.shape)} and {tuple(reference_logits.shape)} and "
                         f"mask {tuple(mask.shape)} do not match")
    mask = mask.bool()
    per_token = next_token_kl(policy_logits[mask], reference_logits[mask])  # (M,), in the row-major order of mask
    totals = torch.zeros(mask.shape, dtype=torch.float32, device=per_token.device)
    return totals.masked_scatter(mask, per_token).sum(-1)


def batch_kl(policy, reference, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(B, K) summed KL(pi || rho) of each response of a :func:`rrhf.batching.query_batches.collate_queries`
    batch laid out as separate sequences (one row per response), 0 where there is none: both models run on
    the same tensors of each chunk and are compared at the cells that predict response tokens."""
    batch_size, width, longest = batch["shape"].tolist()
    totals = torch.zeros(batch_size * width, dtype=torch.float32, device=batch["shape"].device)
    c = 0
    while f"input_ids_{c}" in batch:
        if f"segments_{c}" in batch:
            raise ValueError("batch_kl: packed rows hold several responses; collate separate sequences")
        policy_logits = policy(**chunk_inputs(policy, batch, c)).logits
        reference_logits = reference(**chunk_inputs(reference, batch, c)).logits
        rows, columns = batch[f"rows_{c}"], batch[f"columns_{c}"]
        mask = torch.zeros(policy_logits.shape[:2], dtype=torch.bool, device=policy_logits.device)
        mask[rows, columns] = True
        # Each row is one response: its output place is the slot of any of its tokens, over the longest.
        cells = batch[f"picks_{c}"] // batch[f"targets_{c}"].shape[1]
        owner = torch.zeros(mask.shape[0], dtype=torch.long, device=mask.device)
        owner[rows[cells]] = batch[f"slots_{c}"] // longest
        scored = mask.any(-1)
        totals[owner[scored]] += token_kl(policy_logits, reference_logits, mask)[scored].to(totals.device)
        c += 1
    return totals.view(batch_size, width)


@torch.no_grad()
def response_kl(policy, reference, tokenizer, prompts: list[str], responses: list[str], max_length: int = 512,
                batch_size: int = KL_BATCH_SIZE) -> list[float]:
    """KL(pi || rho) of each response given its prompt, summed over its tokens (no EOS added).

    ``policy`` is pi and ``reference`` rho, two causal LMs on one device that share ``tokenizer``. Pairs are
    tokenized and cut as :func:`rrhf.evaluation.perplexity.response_nll` cuts them: a pair longer than
    ``max_length`` (capped at both models' positions) loses the start of its prompt
    (:func:`rrhf.models.token_spans.cut_pair`), and how many were cut is logged. Pairs run as separate
    sequences sorted by length, ``batch_size`` per forward of each model, the LM heads on the scored
    positions only where both models allow it. An empty response has KL 0.
    """
    device = next(policy.parameters()).device
    max_length = min(usable_length(policy, max_length), usable_length(reference, max_length))
    prompt_ids, response_ids = prompt_token_ids(tokenizer, prompts), response_token_ids(tokenizer, responses)
    start = sequence_start(tokenizer)
    encoded = [cut_pair(p, r, max_length, start) for p, r in zip(prompt_ids, response_ids)]
    cut = sum(len(start) + len(p) + len(r) > max_length for p, r in zip(prompt_ids, response_ids))
    if cut:
        log.warning("KL to the initial policy: cut %d of %d prompts from the left to fit prompt + response in %d "
                    "tokens", cut, len(encoded), max_length)
    values = [0.0] * len(encoded)
    # A response's first token has no predictor after an empty prompt (as in span_logprobs): none scored, KL 0.
    order = sorted((i for i, (ids, start) in enumerate(encoded) if len(ids) > max(start, 1)),
                   key=lambda i: len(encoded[i][0]))
    keep = keeps_logits(policy) and keeps_logits(reference)
    for first in range(0, len(order), batch_size):
        members = order[first:first + batch_size]
        examples = [QueryExample(encoded[i][0][:encoded[i][1]], [encoded[i][0][encoded[i][1]:]], [0.0])
                    for i in members]
        tensors = collate_queries(examples, tokenizer.pad_token_id, 1 << 30, float("inf"), packed=False,
                                  logits_on_scored_only=keep)
        totals = batch_kl(policy, reference, {k: v.to(device) for k, v in tensors.items()})
        for i, value in zip(members, totals[:, 0].tolist()):
            values[i] = value
    return values
