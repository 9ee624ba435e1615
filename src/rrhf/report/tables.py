"""The paper's tables as CSV, from evaluation metrics and scored training sets (their figures: report.figures)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from rrhf.io import atomic_path, read_json, setup_logging
from rrhf.scoring.training_sets import read_scored_set, training_set_stats

EVALUATION_COLUMNS = ["ppl", "reward", "reward_sem", "gold_reward", "gold_reward_sem", "repetition"]
TABLE7_COLUMNS = ["policy", "setting", "rank_weight", *EVALUATION_COLUMNS]
TABLE2_COLUMNS = ["policy", "setting", *EVALUATION_COLUMNS]
TABLE5_COLUMNS = ["policy", "setting", "accuracy", "pairs"]
# Columns that may be empty: no gold reward on real data, no standard error from a single prompt,
# no perplexity for best-of-n (read_metrics has checked ppl is a number everywhere else), no training-set
# statistics for online settings (OP-k), which sample during training, as in the paper.
TRAIN_COLUMNS = ["train_reward_mean", "train_reward_std", "train_reward_max"]
OPTIONAL_COLUMNS = ("ppl", "reward_sem", "gold_reward", "gold_reward_sem", *TRAIN_COLUMNS)
TABLE6_COLUMNS = ["policy", "setting", *EVALUATION_COLUMNS, *TRAIN_COLUMNS]


def read_metrics(path: str) -> dict[str, Any]:
    """An evaluation's metrics.json; raises naming the file when ``reward_mean`` or ``ppl`` is missing or not a
    finite number (``ppl`` may be null for best-of-n, which reports none, as in the paper)."""
    metrics = read_json(path)
    for key in ("ppl", "reward_mean"):
        value = metrics.get(key)
        if key == "ppl" and value is None and "best_of" in metrics:
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{path}: metric {key} is {'missing' if key not in metrics else value}")
    return metrics


def evaluation_columns(metrics: dict[str, Any]) -> dict[str, float | None]:
    """A table's evaluation columns from an evaluation's metrics (None where a metric is absent)."""
    return {"ppl": metrics["ppl"], "reward": metrics["reward_mean"], "reward_sem": metrics.get("reward_sem"),
            "gold_reward": metrics.get("gold_reward_mean"), "gold_reward_sem": metrics.get("gold_reward_sem"),
            "repetition": metrics.get("repetition")}


def write_csv(frame: pd.DataFrame, output: str) -> None:
    """Write a table atomically, empty cells where an optional column has no value; refuses any other
    missing or non-finite number, naming the row and column."""
    for column in frame.columns.difference(["policy", "setting", *OPTIONAL_COLUMNS]):
        for row, value in enumerate(frame[column]):
            if value is None or not math.isfinite(value):
                raise ValueError(f"{output}: {column} of row {row} ({frame.iloc[row]['policy']}, "
                                 f"{frame.iloc[row]['setting']}) is {value}")
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def finish_table(records: list[dict[str, Any]], columns: list[str], output: str,
                 log_path: str | None) -> pd.DataFrame:
    """The table of ``records`` in ``columns`` order, written with :func:`write_csv` and logged."""
    frame = pd.DataFrame(records, columns=columns)
    write_csv(frame, output)
    setup_logging(log_path).info("wrote %s (%d rows):\n%s", output, len(frame), frame.to_string(index=False))
    return frame


def table6(rows: list[dict[str, str]], metrics_files: list[str], scored_files: list[str | None], output: str,
           log_path: str | None = None) -> pd.DataFrame:
    """Table 6: per row (policy display name, setting), the evaluation's PPL, reward (with its standard error),
    gold reward and repetition, and the training set's reward mean, std and mean-of-best (empty where the
    scored file is None: an online row has no fixed training set). ``metrics_files`` and ``scored_files``
    follow ``rows``."""
    records = []
    for row, metrics_file, scored_file in zip(rows, metrics_files, scored_files, strict=True):
        stats = training_set_stats(read_scored_set(scored_file, ["prompt_id", "reward"])) if scored_file else {}
        records.append({"policy": row["policy"], "setting": row["setting"],
                        **evaluation_columns(read_metrics(metrics_file)), **stats})
    return finish_table(records, TABLE6_COLUMNS, output, log_path)


def table7(rows: list[dict[str, Any]], metrics_files: list[str], output: str,
           log_path: str | None = None) -> pd.DataFrame:
    """Table 7: the ranking-loss ablation, per row (policy, setting, rank_weight) the evaluation columns."""
    records = []
    for row, metrics_file in zip(rows, metrics_files, strict=True):
        records.append({"policy": row["policy"], "setting": row["setting"], "rank_weight": row["rank_weight"],
                        **evaluation_columns(read_metrics(metrics_file))})
    return finish_table(records, TABLE7_COLUMNS, output, log_path)


def table2(rows: list[dict[str, str]], metrics_files: list[str], output: str,
           log_path: str | None = None) -> pd.DataFrame:
    """Table 2: the main comparison. Per row (label, setting) the evaluation columns; ``metrics_files`` follow
    ``rows``."""
    records = [{"policy": row["policy"], "setting": row["setting"], **evaluation_columns(read_metrics(path))}
               for row, path in zip(rows, metrics_files, strict=True)]
    return finish_table(records, TABLE2_COLUMNS, output, log_path)


def table5(rows: list[dict[str, str]], accuracy_files: list[str], output: str,
           log_path: str | None = None) -> pd.DataFrame:
    """Table 5: per row (label, setting) the share of test pairs whose chosen reply the scorer prefers
    (rrhf.evaluation.pair_accuracy); ``accuracy_files`` follow ``rows``."""
    records = []
    for row, path in zip(rows, accuracy_files, strict=True):
        result = read_json(path)
        records.append({"policy": row["policy"], "setting": row["setting"], "accuracy": result["accuracy"],
                        "pairs": result["pairs"]})
    return finish_table(records, TABLE5_COLUMNS, output, log_path)

