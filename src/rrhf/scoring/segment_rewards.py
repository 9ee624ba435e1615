"""Fine-grained rewards (Wu et al., 2023): a reward at the end of every segment of a reply, from the reward models
of :mod:`rrhf.studies.fine_grained.reward_models`.

For a reply, with weights w (``fine_grained.weights``):

- relevance: each sub-sentence gets +w_rel where the relevance model judges it free of error (P(error) <= 0.5),
  -w_rel where not;
- factuality: each sentence gets +w_fact or -w_fact the same way;
- completeness: w_comp * (r - mean) / std at the reply's end, r the completeness model's score and mean / std
  those of its training replies.

Each reward lands on the policy's token that ends its segment (:func:`segment_end_token`, by the characters the
policy's own sampled tokens decode to) and the three are added; a weight of 0 leaves its model out. PPO then
adds its per-token KL penalty (:func:`fine_grained_token_rewards`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

from rrhf.config.blocks import SegmentWeights
from rrhf.io import read_json
from rrhf.models.loading import load_tokenizer
from rrhf.scoring.rewards import score
from rrhf.scoring.segment_classifier import SEGMENT_KINDS, reply_segments, segment_error_probabilities
from rrhf.training.ppo_parts import RunningMoments, whiten

REWARD_SCALINGS = ("running", "whiten")


def token_offsets(tokenizer, ids: list[int]) -> list[tuple[int, int]]:
    """(start, end) characters of each token of ``ids`` in their decoded text: token k spans from where the
    first k tokens' text ends to where the first k + 1 tokens' text ends (special tokens decode to nothing)."""
    ends = [len(tokenizer.decode(ids[:k + 1], skip_special_tokens=True)) for k in range(len(ids))]
    return [(ends[k - 1] if k else 0, end) for k, end in enumerate(ends)]


def segment_end_token(offsets: list[tuple[int, int]], end: int) -> int:
    """The index of the token that holds character ``end - 1`` (a segment's last character): the last token
    starting before ``end``; 0 when none does."""
    return max(bisect.bisect_left([start for start, _ in offsets], end) - 1, 0)


@dataclass
class SegmentRewarder:
    """The loaded reward models (``None`` where the weight is 0), their settings and the weights."""

    weights: SegmentWeights
    models: dict[str, tuple[Any, Any]]
    completeness_moments: tuple[float, float]
    marker_position: str
    max_length: int

    def judge(self, prompts: list[str], replies: list[str]) -> list[dict[str, Any]]:
        """Per reply: for each segment kind with a model, its segments and their error probabilities
        (``{kind}``: list of (start, end, P(error))), and ``completeness`` (the normalised score) where that
        model is loaded."""
        judged: list[dict[str, Any]] = [{} for _ in replies]
        for kind in SEGMENT_KINDS:
            if kind not in self.models:
                continue
            model, tokenizer = self.models[kind]
            probabilities = segment_error_probabilities(model, tokenizer, prompts, replies, kind,
                                                        self.marker_position, self.max_length)
            for entry, reply, found in zip(judged, replies, probabilities):
                entry[kind] = [(start, end, p) for (start, end), p in zip(reply_segments(reply, kind), found)]
        if "completeness" in self.models:
            model, tokenizer = self.models["completeness"]
            mean, std = self.completeness_moments
            for entry, value in zip(judged, score(model, tokenizer, prompts, replies, max_length=self.max_length)):
                entry["completeness"] = (value - mean) / std
        return judged

    def rewards(self, judged: dict[str, Any], offsets: list[tuple[int, int]], actions: int) -> torch.Tensor:
        """(actions,) rewards of one reply's tokens from its :meth:`judge` entry and its tokens' character
        ``offsets`` (the first len(offsets) actions; an EOS after them has none); completeness at the last."""
        rewards = torch.zeros(actions)
        for kind in SEGMENT_KINDS:
            weight = getattr(self.weights, kind)
            for _, end, probability in judged.get(kind, []) if weight else []:
                rewards[segment_end_token(offsets, end)] += weight if probability <= 0.5 else -weight
        if self.weights.completeness and "completeness" in judged:
            rewards[actions - 1] += self.weights.completeness * judged["completeness"]
        return rewards


def load_segment_rewarder(paths: dict[str, str], weights: SegmentWeights | dict[str, float], marker_position: str,
                          max_length: int, device: torch.device | str, all_models: bool = False) -> SegmentRewarder:
    """The reward models at ``paths`` (kind -> folder) whose weight is not 0 (every one with ``all_models``),
    in eval mode on ``device``; the completeness model's mean and std from its metrics.json."""
    weights = SegmentWeights.coerce(weights)
    models, moments = {}, (0.0, 1.0)
    for kind, path in paths.items():
        if not (all_models or getattr(weights, kind)):
            continue
        tokenizer = load_tokenizer(path, padding_side="right")
        loader = AutoModelForSequenceClassification if kind == "completeness" else AutoModelForTokenClassification
        models[kind] = (loader.from_pretrained(path).to(device).eval().requires_grad_(False), tokenizer)
        if kind == "completeness":
            metrics = read_json(f"{path}/metrics.json")
            moments = (float(metrics["mean"]), float(metrics["std"]) or 1.0)
    return SegmentRewarder(weights, models, moments, marker_position, max_length)


def fine_grained_token_rewards(raw: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                               mask: torch.Tensor, kl_coef: float, scaling: str, moments: RunningMoments
                               ) -> torch.Tensor:
    """(B, T) per-token rewards of PPO: the segment rewards ``raw`` (B, T), scaled, minus kl_coef * (log pi -
    log rho) at every action.

    ``scaling``: ``running`` divides by the running std of the replies' summed rewards (``moments`` is updated
    with them first), as PPO's holistic score is scaled; ``whiten`` divides by the std of ``raw`` over the
    batch's actions, keeping its mean (the original's whiten_rewards)."""
    if scaling == "running":
        moments.update(raw.sum(-1))
        scaled = raw / moments.std
    elif scaling == "whiten":
        scaled = whiten(raw, mask, shift_mean=False)
    else:
        raise ValueError(f"fine_grained.reward_scaling must be one of {list(REWARD_SCALINGS)}, not {scaling!r}")
    return (scaled - kl_coef * (logprobs - ref_logprobs)) * mask
