"""results/reward_models.csv: how well each reward model built here ranks by gold, per replicate.

The reward model is the proxy every method optimises; its agreement with gold on the replies the policies
themselves write decides whether optimising it helps. Each row is one reward build in one replicate and one
scope: a policy's held-out on-policy replies (Spearman of reward with gold over the replies, the share of pairs
ordered like gold), or the dataset's held-out test pairs (``policy`` = "dataset pairs", the share ordered like
gold), read from the metrics.json training wrote beside the model (rrhf.training.reward_model).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rrhf.io import atomic_path, read_json, setup_logging

COLUMNS = ["replicate", "reward_model", "policy", "spearman", "gold_accuracy", "pairs"]
DATASET_PAIRS = "dataset pairs"


def criteria_rows(metrics: dict[str, Any], replicate: int, reward_model: str) -> list[dict[str, Any]]:
    """The rows of one reward model's training metrics: one per policy of ``on_policy_held_out`` (and "all"),
    and one for the dataset's test pairs."""
    rows = [{"replicate": replicate, "reward_model": reward_model, "policy": policy, "spearman": scores["spearman"],
             "gold_accuracy": scores["gold_accuracy"], "pairs": scores["gold_pairs"]}
            for policy, scores in metrics.get("on_policy_held_out", {}).items()]
    rows.append({"replicate": replicate, "reward_model": reward_model, "policy": DATASET_PAIRS, "spearman": None,
                 "gold_accuracy": metrics.get("test_gold_accuracy"), "pairs": metrics.get("test_gold_pairs")})
    return rows


def write_reward_models(metrics_files: list[str], replicates: list[int], names: list[str], output: str,
                        log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: the rows of every (replicate, reward build)'s metrics.json (``metrics_files``, with
    their ``replicates`` and ``names`` in the same order), written to ``output``."""
    rows = [row for path, replicate, name in zip(metrics_files, replicates, names)
            for row in criteria_rows(read_json(path), replicate, name)]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    setup_logging(log_path).info("wrote %s:\n%s", output, frame.to_string(index=False))
    return frame
