"""The RRHF loss (Yuan et al., 2023, eq. 2-4) and the ranking metric used to watch it."""

from __future__ import annotations

import torch


def sequence_scores(token_logprobs: torch.Tensor, response_mask: torch.Tensor,
                    length_penalty: float = 1.0) -> torch.Tensor:
    """p_i = sum_t log P(y_i,t | x, y_i,<t) / n_i ** length_penalty.

    token_logprobs, response_mask: (B, K, T). Returns (B, K); a response with no
    tokens scores 0.
    """
    mask = response_mask.to(token_logprobs.dtype)
    lengths = mask.sum(-1).clamp(min=1)
    return (token_logprobs * mask).sum(-1) / lengths ** length_penalty


def rrhf_loss(token_logprobs: torch.Tensor, response_mask: torch.Tensor, rewards: torch.Tensor, *,
              rank_weight: float = 1.0, length_penalty: float = 1.0,
              ft_reduction: str = "token_mean") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RRHF loss of a batch of B queries with K responses each.

    Args:
        token_logprobs: (B, K, T) log-probabilities of each response token under the policy.
        response_mask: (B, K, T) true on response tokens (EOS included), false on padding.
            A response whose mask is all false is a placeholder (a query with fewer
            than K responses): it takes part in neither loss.
        rewards: (B, K) reward of each response.
        rank_weight: weight of the ranking loss (0 gives Table 7's "no ranking loss" ablation).
        length_penalty: p_i divides the summed log-probability by n_i ** length_penalty
            (1 is the paper's length normalisation, 0 the plain sum).
        ft_reduction: "token_mean" (mean NLL over the best response's tokens) or
            "sum" (summed NLL, the paper's eq. 4).

    Returns:
        (loss, rank_loss, ft_loss), scalars, with loss = rank_weight * rank_loss + ft_loss.
        rank_loss is, per query, sum over pairs with r_i < r_j of max(0, p_i - p_j)
        (equal rewards give no loss), averaged over queries; ft_loss is the NLL of
        each query's highest-reward response (the first one on ties), averaged over
        queries.

    Note: the official implementation reduces the fine-tuning loss with a mean
    over the padded length T of the batch, so an example's weight depends on how
    long the other responses in its batch are (and on the batching itself). We
    divide by the best response's own token count instead, so the same example
    contributes the same loss whatever it is batched with.
    """
    if ft_reduction not in ("token_mean", "sum"):
        raise ValueError(f"ft_reduction must be 'token_mean' or 'sum', not {ft_reduction!r}")
    mask = response_mask.to(token_logprobs.dtype)
    lengths = mask.sum(-1)  # (B, K)
    valid = lengths > 0
    scores = sequence_scores(token_logprobs, response_mask, length_penalty)

    # pair_violation[b, i, j] = max(0, p_i - p_j) where r_i < r_j, both responses real.
    worse = (rewards.unsqueeze(-1) < rewards.unsqueeze(-2)) & valid.unsqueeze(-1) & valid.unsqueeze(-2)
    violation = (scores.unsqueeze(-1) - scores.unsqueeze(-2)).clamp(min=0)
    rank_loss = (violation * worse).sum(dim=(-1, -2)).mean()

    best = rewards.masked_fill(~valid, float("-inf")).argmax(dim=-1)  # first maximum on ties
    best_logprobs = (token_logprobs * mask).sum(-1).gather(1, best.unsqueeze(1)).squeeze(1)
    if ft_reduction == "token_mean":
        best_logprobs = best_logprobs / lengths.gather(1, best.unsqueeze(1)).squeeze(1).clamp(min=1)
    ft_loss = -best_logprobs.mean()
    return rank_weight * rank_loss + ft_loss, rank_loss, ft_loss


def rank_pair_counts(scores: torch.Tensor, rewards: torch.Tensor,
                     valid: torch.Tensor | None = None) -> tuple[int, int]:
    """(pairs ordered like the rewards, pairs with different rewards) among each query's responses.

    scores, rewards: (B, K); valid: (B, K) bool or None (all valid). A pair with
    r_i < r_j counts as right when p_i < p_j.
    """
    if valid is None:
        valid = torch.ones_like(rewards, dtype=torch.bool)
    pairs = (rewards.unsqueeze(-1) < rewards.unsqueeze(-2)) & valid.unsqueeze(-1) & valid.unsqueeze(-2)
    right = pairs & (scores.unsqueeze(-1) < scores.unsqueeze(-2))
    return int(right.sum()), int(pairs.sum())


def rank_accuracy(scores: torch.Tensor, rewards: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Share of response pairs with different rewards that the policy orders like the rewards (NaN if none)."""
    right, total = rank_pair_counts(scores, rewards, valid)
    return right / total if total else float("nan")
