"""Every loss of the project, each a pure function of tensors with its shapes, and the metrics that watch them.

RRHF's ranking and fine-tuning loss (Yuan et al., 2023, eq. 2-4) and its rank accuracy; the reward model's
Bradley-Terry loss and pair accuracy; PPO's clipped surrogate and clipped value loss; the pairwise and unpaired
preference losses that came after RRHF (DPO, R-DPO, IPO, SLiC-HF, SimPO, KTO, ORPO). The training methods
(rrhf.training) wrap them in a ``compute_loss(model, batch)`` for the one training loop; LM pre-training and
SFT use the model's own token cross-entropy (``model(**batch).loss``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the true entries of ``mask`` (same shape); a scalar."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)



def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cliprange: float = 0.2) -> tuple[torch.Tensor, float, float]:
    """PPO's clipped surrogate: (loss, clip fraction, approximate KL to the rollout policy).

    logprobs: (B, T) log pi(a_t | s_t) under the current policy (with gradient);
    old_logprobs, advantages: (B, T) from the rollout. loss is the masked mean of
    max(-A * ratio, -A * clip(ratio, 1 - cliprange, 1 + cliprange)); the clip
    fraction is the share of tokens where the clipped term is the larger; the KL
    is the mean of (ratio - 1) - log ratio (Schulman's k3 estimator).
    """
    log_ratio = (logprobs - old_logprobs) * mask
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_fraction = float(masked_mean((clipped > unclipped).to(logprobs.dtype), mask))
    approx_kl = float(masked_mean((ratio - 1 - log_ratio).detach(), mask))
    return loss, clip_fraction, approx_kl



def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float = 0.2) -> tuple[torch.Tensor, float]:
    """PPO's clipped value loss: (loss, clip fraction).

    values: (B, T) current value estimates (with gradient); old_values, returns:
    (B, T) from the rollout. The prediction is also clipped to within
    ``cliprange_value`` of the old one; loss = 0.5 * masked mean of the larger of
    the two squared errors; the clip fraction is the share of tokens where the
    clipped error is the larger.
    """
    clipped_values = torch.clamp(values, old_values - cliprange_value, old_values + cliprange_value)
    error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(error, clipped_error), mask)
    return loss, float(masked_mean((clipped_error > error).to(values.dtype), mask))


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """Mean of -log sigmoid(r_chosen - r_rejected); both inputs have shape (B,)."""
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()



# RRHF's successors, on the same log-probabilities as RRHF: each takes per-reply log-probabilities of the policy
# (and of the reference rho where the method has one), summed over the reply's tokens, as (B,) tensors, and
# returns the per-pair (or, for KTO, per-reply) losses (B,); the training loop takes their mean. ``*_lengths``
# are the replies' token counts.


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor, beta: float,
             length_weight: float | None = None, chosen_lengths: torch.Tensor | None = None,
             rejected_lengths: torch.Tensor | None = None) -> torch.Tensor:
    """DPO (Rafailov et al., 2023), the sigmoid loss: -log sigmoid(beta * h) with the margin of implicit rewards
    h = (pi_c - rho_c) - (pi_r - rho_r). With ``length_weight`` alpha > 0 it is R-DPO (Park et al., 2024):
    -log sigmoid(beta * h - alpha * (n_c - n_r)), which charges the chosen reply for being longer.

    All inputs (B,); returns (B,)."""
    chosen_ratio = policy_chosen_logps - reference_chosen_logps
    margin = beta * (chosen_ratio - (policy_rejected_logps - reference_rejected_logps))
    if length_weight:
        margin = margin - length_weight * (chosen_lengths - rejected_lengths).to(margin.dtype)
    return -F.logsigmoid(margin)


def ipo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
             chosen_lengths: torch.Tensor, rejected_lengths: torch.Tensor, beta: float) -> torch.Tensor:
    """IPO (Azar et al., 2023): (h - 1 / (2 beta))^2, regressing the margin of log-ratios to a fixed target
    instead of pushing it to infinity; h averages each reply's log-ratio over its tokens, as TRL does:
    h = (pi_c - rho_c) / n_c - (pi_r - rho_r) / n_r. All inputs (B,); returns (B,)."""
    margin = ((policy_chosen_logps - reference_chosen_logps) / chosen_lengths.clamp(min=1)
              - (policy_rejected_logps - reference_rejected_logps) / rejected_lengths.clamp(min=1))
    return (margin - 1 / (2 * beta)) ** 2


def slic_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor, chosen_nll: torch.Tensor,
              beta: float, nll_weight: float) -> torch.Tensor:
    """SLiC-HF (Zhao et al., 2023): the rank-calibration hinge max(0, 1 - beta * (pi_c - pi_r)) (margin delta =
    1 / beta on the summed log-probabilities; no reference model) plus ``nll_weight`` times the chosen reply's
    fine-tuning loss ``chosen_nll`` (its mean token NLL). All inputs (B,); returns (B,)."""
    return torch.relu(1 - beta * (policy_chosen_logps - policy_rejected_logps)) + nll_weight * chosen_nll


def simpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
               chosen_lengths: torch.Tensor, rejected_lengths: torch.Tensor, beta: float, gamma: float
               ) -> torch.Tensor:
    """SimPO (Meng et al., 2024): -log sigmoid(beta * (pi_c / n_c - pi_r / n_r) - gamma), the length-normalised
    log-probability as the implicit reward (no reference model) and a target margin gamma. All inputs (B,);
    returns (B,)."""
    chosen = policy_chosen_logps / chosen_lengths.clamp(min=1)
    return -F.logsigmoid(beta * (chosen - policy_rejected_logps / rejected_lengths.clamp(min=1)) - gamma)


def kto_reference_point(policy_mismatched_logps: torch.Tensor, reference_mismatched_logps: torch.Tensor
                        ) -> torch.Tensor:
    """KTO's reference point z: the batch's estimate of KL(pi || rho), max(0, mean(pi(y'|x) - rho(y'|x))) over
    replies y' paired with another example's prompt x, detached (no gradient flows through it). Inputs (N,)."""
    return (policy_mismatched_logps - reference_mismatched_logps).mean().clamp(min=0).detach()


def kto_loss(policy_logps: torch.Tensor, reference_logps: torch.Tensor, desirable: torch.Tensor,
             reference_point: torch.Tensor, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> torch.Tensor:
    """KTO (Ethayarajh et al., 2024) on unpaired replies: with r = pi - rho, a desirable reply costs
    w_d * (1 - sigmoid(beta * (r - z))) and an undesirable one w_u * (1 - sigmoid(beta * (z - r))), z the
    reference point (:func:`kto_reference_point`). policy_logps, reference_logps, desirable (bool): (N,);
    returns (N,)."""
    ratio = policy_logps - reference_logps
    return torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (ratio - reference_point))),
                       undesirable_weight * (1 - torch.sigmoid(beta * (reference_point - ratio))))


def log_one_minus_exp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate near 0 and far below it."""
    return torch.where(x > -0.6931471805599453, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def orpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
              chosen_lengths: torch.Tensor, rejected_lengths: torch.Tensor, chosen_nll: torch.Tensor,
              odds_ratio_weight: float) -> torch.Tensor:
    """ORPO (Hong et al., 2024): the chosen reply's NLL ``chosen_nll`` minus lambda * log sigmoid(log odds ratio),
    where a reply's odds are p / (1 - p) of its per-token mean probability p = exp(pi / n): log OR =
    (a - b) - (log(1 - e^a) - log(1 - e^b)) with a = pi_c / n_c, b = pi_r / n_r. No reference model. All
    inputs (B,); returns (B,)."""
    chosen = policy_chosen_logps / chosen_lengths.clamp(min=1)
    rejected = policy_rejected_logps / rejected_lengths.clamp(min=1)
    log_odds = (chosen - rejected) - (log_one_minus_exp(chosen) - log_one_minus_exp(rejected))
    return chosen_nll - odds_ratio_weight * F.logsigmoid(log_odds)


def segment_classification_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100
                                ) -> torch.Tensor:
    """Cross-entropy of a token classifier at the labelled positions: logits (B, L, C), labels (B, L) holding a
    class at each segment marker and ``ignore_index`` elsewhere; the mean over the labelled positions."""
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=ignore_index)


def pairwise_accuracy(chosen_rewards, rejected_rewards) -> float:
    """Fraction of pairs whose chosen reply scores strictly higher than the rejected one."""
    chosen = torch.as_tensor(chosen_rewards, dtype=torch.float)
    rejected = torch.as_tensor(rejected_rewards, dtype=torch.float)
    return float((chosen > rejected).float().mean())
