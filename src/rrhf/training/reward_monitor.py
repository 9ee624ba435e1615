"""The policy's average reward during training (the paper's Figure 3), measured every few optimiser steps.

Every ``every_steps`` steps (and at the last) the model being trained answers a
fixed set of training prompts greedily; the answers are cut at the next turn,
as evaluation cuts them, and scored by the reward model, and by the gold reward
where the data set has one. The means go into that step's ``train_log.parquet``
row as ``reward`` and ``gold_reward`` (NaN in the other rows). Decoding runs in
eval mode under a forked RNG (its seeding is undone afterwards) and changes no
weight, so a run with the monitor trains exactly as one without it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from rrhf.data.gold_reward import gold_rewards
from rrhf.models.loading import load_reward_model, resolve_device
from rrhf.plan.blocks import RewardDuringTraining, Scoring
from rrhf.sampling.generation import generate_responses
from rrhf.scoring.rewards import score
from rrhf.text import cut_at_turn

log = logging.getLogger("rrhf")


@dataclass
class RewardMonitor:
    """``monitor(model, step, last)`` -> {"reward": mean, "gold_reward": mean} every ``every_steps`` steps and at
    the last step, else {}."""

    reward_model: Any
    reward_tokenizer: Any
    tokenizer: Any
    prompts: list[str]
    every_steps: int
    max_new_tokens: int
    scoring: Scoring
    gold_source: str | None

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, step: int, last: bool) -> dict[str, float]:
        if step % self.every_steps and not last:
            return {}
        was_training, side = model.training, self.tokenizer.padding_side
        model.eval()
        self.tokenizer.padding_side = "left"
        try:
            with torch.random.fork_rng():  # generation seeds the global RNG; training's dropout must not see it
                generated = generate_responses(model, self.tokenizer, self.prompts, "greedy", num_responses=1,
                                               max_new_tokens=self.max_new_tokens, batch_size=len(self.prompts))
        finally:
            self.tokenizer.padding_side = side
            model.train(was_training)
        responses = [cut_at_turn(texts[0]) for texts in generated]
        rewards = score(self.reward_model, self.reward_tokenizer, self.prompts, responses, self.scoring.batch_size,
                        self.scoring.max_length, prompt_sharing=self.scoring.prompt_sharing)
        gold = gold_rewards(pd.DataFrame({"prompt": self.prompts, "response": responses}), self.gold_source)
        gold = [g for g in gold if not math.isnan(g)]
        measured = {"reward": sum(rewards) / len(rewards), "gold_reward": sum(gold) / len(gold) if gold else math.nan}
        log.info("step %d: greedy reward %.4f, gold %.4f on %d training prompts", step, measured["reward"],
                 measured["gold_reward"], len(self.prompts))
        return measured


def monitor_prompts(frame: pd.DataFrame, count: int) -> list[str]:
    """The first ``count`` prompts of a training set in prompt_id order (the same ones at every step)."""
    return list(frame.drop_duplicates("prompt_id").sort_values("prompt_id")["prompt"].head(count))


def reward_monitor(reward_model: str | dict[str, Any] | None, settings: RewardDuringTraining,
                   scoring: Scoring | dict[str, Any] | None, tokenizer, frame: pd.DataFrame,
                   gold_source: str | None, dtype: str) -> RewardMonitor | None:
    """The monitor of the policy's greedy reward on ``settings.prompts`` training prompts every
    ``settings.every_steps`` steps, scored with ``scoring``; None when off (no reward model, or every_steps 0)."""
    if reward_model is None or not settings.every_steps:
        return None
    scorer, scorer_tokenizer = load_reward_model(reward_model, resolve_device("auto"), dtype)
    return RewardMonitor(scorer, scorer_tokenizer, tokenizer, monitor_prompts(frame, settings.prompts),
                         settings.every_steps, settings.max_new_tokens, Scoring.coerce(scoring), gold_source)
