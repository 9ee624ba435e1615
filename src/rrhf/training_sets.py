"""The training set of each setting, assembled from scored parts, and its reward statistics.

Pandas only (no torch), so the jobs that use it start quickly.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from rrhf.io import read_parquet, setup_logging, write_parquet

log = logging.getLogger("rrhf")
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "source", "reward"]


def assemble_training_set(sampled: str | None, provided: str | None, output: str, setting: str,
                          log_path: str | None = None) -> None:
    """Stage entry point: one setting's training set, the scored samples and/or the provided replies.

    Provided replies follow the sampled ones of the same prompt (``response_index``
    continues after the samples'). Only prompts present in every part are kept.
    """
    setup_logging(log_path)
    paths = [path for path in (sampled, provided) if path]
    if not paths:
        raise ValueError(f"setting {setting!r} has neither sampled nor provided responses")
    frame = combine_parts([read_parquet(path, SCORED_COLUMNS)[SCORED_COLUMNS] for path in paths],
                          f"setting {setting}")
    log.info("setting %s: %d prompts, %d responses, reward mean %.4f", setting, frame["prompt_id"].nunique(),
             len(frame), frame["reward"].mean())
    write_parquet(frame, output, {"stage": "assemble_training_set", "setting": setting,
                                  "sampled": sampled, "provided": provided})


def combine_parts(parts: list[pd.DataFrame], what: str) -> pd.DataFrame:
    """One training set from scored parts (sampled, then provided): the rows of the prompts every part has,
    with the later part's ``response_index`` continuing after the earlier one's, sorted by prompt and index.

    ``what`` names the set in the warning about dropped prompts and in the error when no prompt is shared.
    Extra columns of the parts are kept (missing ones become NaN).
    """
    common = set.intersection(*(set(p["prompt_id"]) for p in parts))
    if not common:
        raise ValueError(f"{what}: its {len(parts)} parts share no prompt_id")
    dropped = set.union(*(set(p["prompt_id"]) for p in parts)) - common
    if dropped:
        log.warning("%s: dropped %d prompts missing from one part, e.g. %s", what, len(dropped), sorted(dropped)[:3])
    parts = [p[p["prompt_id"].isin(common)] for p in parts]
    for number in range(1, len(parts)):
        offset = int(parts[number - 1]["response_index"].max()) + 1
        parts[number] = parts[number].assign(response_index=parts[number]["response_index"] + offset)
    frame = pd.concat(parts, ignore_index=True).sort_values(["prompt_id", "response_index"], kind="stable")
    return frame.reset_index(drop=True)


def training_set_stats(frame: pd.DataFrame) -> dict[str, Any]:
    """Mean and std of all rewards, and the mean over prompts of the best reward (Table 6's train columns)."""
    return {"train_reward_mean": float(frame["reward"].mean()),
            "train_reward_std": float(frame["reward"].std(ddof=0)),
            "train_reward_max": float(frame.groupby("prompt_id")["reward"].max().mean())}
