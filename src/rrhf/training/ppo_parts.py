"""The pieces of PPO (Schulman et al., 2017) as trlX's HH configuration uses them, each a small function:
whitening, advantages, per-token rewards, the KL estimate and controllers, reward scaling (its two losses are
in rrhf.losses).

Shapes: B rollouts, T the longest response in tokens. ``mask`` (B, T) is true on
a rollout's response tokens (its actions) and false on padding; every (B, T)
input is ignored where the mask is false. :mod:`rrhf.training.ppo` puts the pieces
together.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rrhf.config.blocks import KLControl

WHITEN_EPSILON = 1e-8


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / sqrt(var + 1e-8) over the masked entries; 0 where ``mask`` is false.

    values, mask: (B, T). The variance is the unbiased one (as ``torch.var``).
    With ``shift_mean=False`` the mean is added back (only the scale changes).
    trlX whitens the padded tensor as a whole; here padding takes no part.
    """
    mask = mask.to(values.dtype)
    count = mask.sum()
    mean = (values * mask).sum() / count.clamp(min=1)
    variance = (((values - mean) * mask) ** 2).sum() / (count - 1).clamp(min=1)
    whitened = (values - mean) * torch.rsqrt(variance + WHITEN_EPSILON)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def advantages_and_returns(values: torch.Tensor, rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
                           lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016): (advantages, returns), each (B, T).

    values: (B, T) value of the state before each action; rewards: (B, T) reward of
    each action. delta_t = r_t + gamma * V_{t+1} - V_t, with V = 0 after a rollout's
    last action; A_t = delta_t + gamma * lam * A_{t+1}; returns = A + V. Both are
    0 on padding. Not whitened (see :func:`whiten`).
    """
    mask = mask.to(values.dtype)
    values, rewards = values * mask, rewards * mask
    advantages = torch.zeros_like(values)
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_values = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


def token_rewards(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor,
                  kl_coef: float) -> torch.Tensor:
    """(B, T) per-token rewards: -kl_coef * (log pi - log rho) at every action, plus the score at the last one.

    logprobs, ref_logprobs: (B, T) of the rollout's actions under the policy and
    the frozen reference; scores: (B,) the (scaled) reward-model score of each
    whole response.
    """
    rewards = -kl_coef * (logprobs - ref_logprobs) * mask
    last = mask.long().sum(-1).clamp(min=1) - 1
    return rewards.scatter_add(1, last.unsqueeze(1), scores.to(rewards.dtype).unsqueeze(1))


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B,) estimated KL(pi || rho) of each rollout: the sum over its actions of exp(-d) - 1 + d, d = log pi - log rho.

    The per-token term is Schulman's k3 estimator ((r - 1) - log r with
    r = rho / pi, on tokens sampled from pi): unbiased and never negative.
    trlX computes exp(d) - 1 - d instead, which estimates something else and
    blows up where the policy is far more confident than rho.
    """
    difference = (logprobs - ref_logprobs) * mask
    return ((torch.exp(-difference) - 1 + difference) * mask).sum(-1)


class AdaptiveKLController:
    """Ziegler et al. (2019)'s adaptive KL coefficient: moves it towards the KL ``target``.

    After each update of ``n_steps`` rollouts the coefficient is multiplied by
    1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon.
    """

    def __init__(self, init_coef: float, target: float, horizon: float):
        self.value, self.target, self.horizon = init_coef, target, horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1, -0.2, 0.2))
        self.value *= 1 + error * n_steps / self.horizon


class FixedKLController:
    """A KL coefficient that does not change."""

    def __init__(self, init_coef: float):
        self.value = init_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing: the coefficient is fixed."""


def kl_controller(spec: KLControl) -> AdaptiveKLController | FixedKLController:
    """The controller a config's ``ppo.kl`` block names (``controller``: adaptive or fixed)."""
    if spec.controller == "adaptive":
        return AdaptiveKLController(spec.init_coef, spec.target, spec.horizon)
    if spec.controller == "fixed":
        return FixedKLController(spec.init_coef)
    raise ValueError(f"kl.controller must be 'adaptive' or 'fixed', not {spec.controller!r}")


class RunningMoments:
    """Running mean and standard deviation of every value seen so far (parallel Welford update).

    Starts at mean 0, std 1 with a vanishing count, so the first batch sets
    both. ``std`` is the unbiased estimate over all values seen.
    """

    def __init__(self):
        self.mean, self.var, self.std, self.count = 0.0, 1.0, 1.0, 1e-24

    def update(self, values: torch.Tensor) -> tuple[float, float]:
        """Fold in a batch of values (any shape); return the batch's own (mean, unbiased std)."""
        values = values.detach().double().flatten()
        count = values.numel()
        batch_var, batch_mean = torch.var_mean(values, unbiased=False)
        batch_var, batch_mean = float(batch_var), float(batch_mean)
        delta = batch_mean - self.mean
        total = self.count + count
        summed = self.var * self.count + delta ** 2 * self.count * count / total + batch_var * count
        self.mean += delta * count / total
        self.var = summed / total
        self.std = math.sqrt(self.var * total / (total - 1)) if total > 1 else 1.0
        self.count = total
        batch_std = math.sqrt(batch_var * count / (count - 1)) if count > 1 else float("nan")
        return batch_mean, batch_std


def scale_scores(scores: torch.Tensor, moments: RunningMoments, scale: str, clip: float | None) -> torch.Tensor:
    """(B,) scores as trlX feeds them to PPO: clipped to [-clip, clip], then divided by the running std.

    ``moments`` is updated with the clipped scores first. ``scale`` is "running"
    (divide) or "none"; ``clip`` None or 0 turns clipping off.
    """
    if clip:
        scores = scores.clamp(-clip, clip)
    moments.update(scores)
    if scale == "running":
        return scores / moments.std
    if scale != "none":
        raise ValueError(f"scale_reward must be 'running' or 'none', not {scale!r}")
    return scores
