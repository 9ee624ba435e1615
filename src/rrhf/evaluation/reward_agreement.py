"""How well the reward model (the proxy) agrees with the gold reward, where a dataset has one.

RRHF learns only from how each query's responses are ordered, so besides the
rank correlation over a whole training set this reports the share of
same-prompt response pairs that the proxy orders like gold.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from rrhf.data.dataset_facts import gold_source
from rrhf.data.gold_reward import gold_rewards
from rrhf.io import read_json, read_parquet, setup_logging, write_json
from rrhf.statistics import ordered_like_gold, spearman

log = logging.getLogger("rrhf")






def within_prompt_pairs(frame: pd.DataFrame) -> tuple[int, int]:
    """:func:`ordered_like_gold` over every pair of responses to the same prompt (``prompt_id``, ``reward``,
    ``gold_reward`` columns)."""
    right = total = 0
    for _, group in frame.groupby("prompt_id", sort=False):
        rewards, golds = list(group["reward"]), list(group["gold_reward"])
        pairs = [(i, j) for i in range(len(group)) for j in range(i + 1, len(group))]
        r, t = ordered_like_gold([rewards[i] for i, _ in pairs], [rewards[j] for _, j in pairs],
                                 [golds[i] for i, _ in pairs], [golds[j] for _, j in pairs])
        right, total = right + r, total + t
    return right, total


def training_set_agreement(frame: pd.DataFrame) -> dict[str, float]:
    """Agreement of ``reward`` with ``gold_reward`` on one scored training set (rows without gold are skipped)."""
    frame = frame.dropna(subset=["gold_reward"])
    right, total = within_prompt_pairs(frame)
    best_by_reward = frame.loc[frame.groupby("prompt_id")["reward"].idxmax(), "gold_reward"]
    return {"responses": len(frame), "spearman": spearman(list(frame["reward"]), list(frame["gold_reward"])),
            "within_prompt_pair_accuracy": right / total if total else math.nan, "within_prompt_pairs": total,
            "gold_of_best_by_reward": float(best_by_reward.mean()),
            "gold_of_best_by_gold": float(frame.groupby("prompt_id")["gold_reward"].max().mean())}


def evaluate_reward_model(reward_model: str | dict[str, Any], scored: dict[str, str], output: str,
                          log_path: str | None = None) -> dict:
    """Stage entry point: the reward model's held-out metrics and its agreement with gold on scored training sets.

    ``scored`` maps a name ("instruct/DP") to a scored training set; each is graded by the gold reward of the
    dataset its provenance records (none: no gold). ``reward_model`` is its path, or the dict of a value-head
    checkpoint (rrhf.models.loading.load_reward_model). Writes ``output`` (JSON): ``held_out``, the
    metrics.json that training wrote beside the reward model (empty for a model not trained here), and
    ``training_sets``, per name :func:`training_set_agreement` (empty without a gold reward).
    """
    setup_logging(log_path)
    folder = reward_model["path"] if isinstance(reward_model, dict) else reward_model
    own_metrics = Path(folder) / "metrics.json"
    result = {"reward_model": reward_model, "held_out": read_json(own_metrics) if own_metrics.exists() else {},
              "training_sets": {}}
    for name, path in scored.items():
        frame = read_parquet(path, ["prompt_id", "prompt", "response", "reward"])
        frame["gold_reward"] = gold_rewards(frame, gold_source(path))
        if frame["gold_reward"].notna().any():
            result["training_sets"][name] = training_set_agreement(frame)
            log.info("%s: %s", name, result["training_sets"][name])
    if not result["training_sets"]:
        log.info("no training set has a gold reward: only the held-out metrics are reported")
    write_json(result, output)
    return result
