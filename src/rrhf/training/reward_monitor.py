"""The policy's average reward during training (the paper's Figure 3), measured every few optimiser steps.

Every ``every_steps`` steps (and at the last) the model being trained answers a
fixed set of training prompts greedily; the answers are cut at the next turn,
as evaluation cuts them, and scored by the reward model, and by the gold reward
where the data set has one. The means go into that step's ``train_log.parquet``
row as ``reward`` and ``gold_reward`` (NaN in the other rows). Decoding runs in
eval mode under a forked RNG (its seeding is undone afterwards) and changes no
weight, so a run with the monitor trains exactly as one without it.

In training of several processes (DDP or FSDP) each process answers its share of the prompts with
:meth:`rrhf.training.loop.Trainer.generating` and scores them with its own copy of the reward model, on its own
device; the scores are gathered, so every process logs the same means over all the prompts.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from accelerate import PartialState
from accelerate.utils import gather_object

from rrhf.config.blocks import RewardDuringTraining, Scoring
from rrhf.data.gold_reward import gold_rewards
from rrhf.models.loading import load_reward_model
from rrhf.sampling.generation import generate_responses
from rrhf.scoring.rewards import score
from rrhf.text import cut_at_turn

if TYPE_CHECKING:
    from rrhf.training.loop import Trainer

log = logging.getLogger("rrhf")


@dataclass
class RewardMonitor:
    """``monitor(trainer, step, last)`` -> {"reward": mean, "gold_reward": mean} every ``every_steps`` steps and at
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
    def __call__(self, trainer: "Trainer", step: int, last: bool) -> dict[str, float]:
        if step % self.every_steps and not last:
            return {}
        accelerator = trainer.accelerator
        mine = self.prompts[accelerator.process_index::accelerator.num_processes]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        # Generation seeds the RNGs (training's dropout must not see it): this process's GPU's only, as each
        # process of a node sees all of them.
        devices = [accelerator.device] if accelerator.device.type == "cuda" else []
        try:
            with trainer.generating() as model, torch.random.fork_rng(devices=devices):
                generated = generate_responses(model, self.tokenizer, mine, "greedy", num_responses=1,
                                               max_new_tokens=self.max_new_tokens, batch_size=max(1, len(mine)))
        finally:
            self.tokenizer.padding_side = side
        responses = [cut_at_turn(texts[0]) for texts in generated]
        rewards = score(self.reward_model, self.reward_tokenizer, mine, responses, self.scoring.batch_size,
                        self.scoring.max_length, prompt_sharing=self.scoring.prompt_sharing)
        gold = gold_rewards(pd.DataFrame({"prompt": mine, "response": responses}), self.gold_source)
        pairs = gather_object(list(zip(rewards, gold)))  # every process's, in process order (as is in one)
        kept = [g for _, g in pairs if not math.isnan(g)]
        measured = {"reward": sum(r for r, _ in pairs) / len(pairs),
                    "gold_reward": sum(kept) / len(kept) if kept else math.nan}
        log.info("step %d: greedy reward %.4f, gold %.4f on %d training prompts", step, measured["reward"],
                 measured["gold_reward"], len(pairs))
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
    # This process's device, where training puts the policy (cuda:k for process k of a node).
    scorer, scorer_tokenizer = load_reward_model(reward_model, PartialState().device, dtype)
    return RewardMonitor(scorer, scorer_tokenizer, tokenizer, monitor_prompts(frame, settings.prompts),
                         settings.every_steps, settings.max_new_tokens, Scoring.coerce(scoring), gold_source)
