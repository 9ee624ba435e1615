"""The training set of each setting, assembled from scored parts, and its reward statistics.

Pandas only (no torch), so the jobs that use it start quickly.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from rrhf.data.dataset_facts import DATASET_KEY, facts_of
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
    frame = combine_parts([read_scored_set(path, SCORED_COLUMNS)[SCORED_COLUMNS] for path in paths],
                          f"setting {setting}")
    log.info("setting %s: %d prompts, %d responses, reward mean %.4f", setting, frame["prompt_id"].nunique(),
             len(frame), frame["reward"].mean())
    write_parquet(frame, output, {"stage": "assemble_training_set", "setting": setting,
                                  "sampled": sampled, "provided": provided, DATASET_KEY: facts_of(*paths)})


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


def _rows(frame: pd.DataFrame, mask: pd.Series, limit: int = 5) -> str:
    """"row i (prompt_id p, response_index k)" for the first ``limit`` rows where ``mask`` is true, and how many
    more there are."""
    rows = []
    for row, item in frame.loc[mask.to_numpy()].head(limit).iterrows():
        ids = ", ".join(f"{key} {item[key]}" for key in ("prompt_id", "response_index") if key in item)
        rows.append(f"row {row} ({ids}): {item['reward']!r}" if "reward" in item else f"row {row} ({ids})")
    more = int(mask.sum()) - len(rows)
    return "; ".join(rows) + (f"; and {more} more" if more > 0 else "")


def check_rewards(frame: pd.DataFrame, origin: str) -> None:
    """Raise ValueError naming ``origin`` (the file) and the rows (index, prompt_id, response_index) whose
    ``reward`` is not a number, or is NaN or infinite (argmax would take a NaN for the best response)."""
    rewards = frame["reward"]
    if not pd.api.types.is_numeric_dtype(rewards) or pd.api.types.is_bool_dtype(rewards):
        numbers = pd.to_numeric(rewards, errors="coerce")
        bad = numbers.isna() & rewards.notna()
        detail = _rows(frame, bad) if bad.any() else "every value is a number stored as text"
        raise ValueError(f"{origin}: column reward holds {rewards.dtype} values, not numbers: {detail}")
    bad = ~np.isfinite(rewards.to_numpy(dtype=float))
    if bad.any():
        raise ValueError(f"{origin}: {int(bad.sum())} reward(s) are NaN or infinite: {_rows(frame, pd.Series(bad))}")


def check_scored_set(frame: pd.DataFrame, origin: str) -> pd.DataFrame:
    """``frame``, a scored training set read from ``origin``, once it passes: at least one row, numeric and
    finite rewards (:func:`check_rewards`), and no (prompt_id, response_index) given twice. Logs a warning
    with the count of prompts that have a single response or whose responses all have the same reward (the
    ranking loss learns nothing from them)."""
    if frame.empty:
        raise ValueError(f"{origin}: the scored set has no rows")
    check_rewards(frame, origin)
    if "response_index" in frame:
        repeated = frame.duplicated(["prompt_id", "response_index"], keep=False)
        if repeated.any():
            raise ValueError(f"{origin}: {int(repeated.sum())} rows repeat a (prompt_id, response_index): "
                             f"{_rows(frame, repeated)}")
    groups = frame.groupby("prompt_id")["reward"]
    single, tied = int((groups.size() < 2).sum()), int(((groups.nunique() == 1) & (groups.size() > 1)).sum())
    if single or tied:
        log.warning("%s: of %d prompts, %d have a single response and %d have responses that all share one "
                    "reward: the ranking loss has nothing to order for them", origin, groups.ngroups, single, tied)
    return frame


def read_scored_set(path: str, columns: list[str]) -> pd.DataFrame:
    """A scored training set with ``columns`` (the error names the missing ones), checked by
    :func:`check_scored_set`."""
    return check_scored_set(read_parquet(path, columns), str(path))


def training_set_stats(frame: pd.DataFrame) -> dict[str, Any]:
    """Mean and std of all rewards, and the mean over prompts of the best reward (Table 6's train columns)."""
    return {"train_reward_mean": float(frame["reward"].mean()),
            "train_reward_std": float(frame["reward"].std(ddof=0)),
            "train_reward_max": float(frame.groupby("prompt_id")["reward"].max().mean())}
