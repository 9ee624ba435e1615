"""The paper's tables as CSV, from evaluation metrics and scored training sets (their figures: report.figures)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from rrhf.io import atomic_path, read_json, setup_logging
from rrhf.scoring.training_sets import read_scored_set, training_set_stats
from rrhf.statistics import t_interval

EVALUATION_COLUMNS = ["ppl", "reward", "reward_sem", "gold_reward", "gold_reward_sem", "repetition"]
TABLE7_COLUMNS = ["policy", "setting", "rank_weight", *EVALUATION_COLUMNS]
TABLE2_COLUMNS = ["policy", "setting", *EVALUATION_COLUMNS]
TABLE5_COLUMNS = ["policy", "setting", "accuracy", "pairs"]
# Columns that may be empty: no gold reward on real data, no standard error from a single prompt,
# no perplexity for best-of-n (read_metrics has checked ppl is a number everywhere else), no training-set
# statistics for online settings (OP-k), which sample during training, as in the paper; no gold error rates or
# completeness on people's fine-grained feedback about real data.
TRAIN_COLUMNS = ["train_reward_mean", "train_reward_std", "train_reward_max"]
OPTIONAL_COLUMNS = ("ppl", "reward_sem", "gold_reward", "gold_reward_sem", *TRAIN_COLUMNS, "relevance_error_rate",
                    "factual_error_rate", "completeness", "kl", "train_seconds", "train_peak_memory_mb")
TABLE6_COLUMNS = ["policy", "setting", *EVALUATION_COLUMNS, *TRAIN_COLUMNS]
# Over replicates, these columns get a 95 % interval column beside them (``{column}_ci95``: its half-width).
INTERVAL_COLUMNS = ("ppl", "reward", "gold_reward", "accuracy", "relevance_error_rate", "factual_error_rate",
                    "completeness", "kl")


def by_replicate(files: list[Any], rows: int, replicates: int) -> list[list[Any]]:
    """Split a rule's flat, replicate-major list of files (every row of replicate 0, then of replicate 1, ...)
    into one list per replicate; raises when its length is not ``rows * replicates``."""
    if len(files) != rows * replicates:
        raise ValueError(f"{len(files)} files for {rows} rows x {replicates} replicates")
    return [files[r * rows:(r + 1) * rows] for r in range(replicates)]


def over_replicates(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One table from each replicate's table (same rows, same columns): every numeric column is the mean over
    replicates (empty where a replicate has no value), each of :data:`INTERVAL_COLUMNS` gets ``{column}_ci95``
    beside it, the half-width of the 95 % t-interval of that mean over replicates
    (:func:`rrhf.statistics.t_interval`), and ``replicates`` counts them. One frame is returned as it is."""
    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    columns: list[str] = []
    table: dict[str, list[Any]] = {}
    for column in first.columns:
        values = [frame[column].tolist() for frame in frames]
        if column in ("policy", "setting"):
            table[column] = values[0]
            columns.append(column)
            continue
        means, half_widths = [], []
        for cells in zip(*values, strict=True):
            numbers = [float(c) for c in cells if c is not None and not (isinstance(c, float) and math.isnan(c))]
            if len(numbers) < len(cells):
                means.append(None)
                half_widths.append(None)
                continue
            mean, half_width = t_interval(numbers)
            means.append(mean)
            half_widths.append(half_width)
        table[column] = means
        columns.append(column)
        if column in INTERVAL_COLUMNS:
            table[f"{column}_ci95"] = half_widths
            columns.append(f"{column}_ci95")
    table["replicates"] = [len(frames)] * len(first)
    return pd.DataFrame(table, columns=[*columns, "replicates"])


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
    optional = [*OPTIONAL_COLUMNS, *(f"{column}_ci95" for column in OPTIONAL_COLUMNS)]
    for column in frame.columns.difference(["policy", "setting", *optional]):
        for row, value in enumerate(frame[column]):
            if value is None or not math.isfinite(value):
                raise ValueError(f"{output}: {column} of row {row} ({frame.iloc[row]['policy']}, "
                                 f"{frame.iloc[row]['setting']}) is {value}")
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def finish_table(records: list[list[dict[str, Any]]], columns: list[str], output: str,
                 log_path: str | None) -> pd.DataFrame:
    """The table of each replicate's ``records`` in ``columns`` order, over replicates
    (:func:`over_replicates`), written with :func:`write_csv` and logged."""
    frame = over_replicates([pd.DataFrame(replicate, columns=columns) for replicate in records])
    write_csv(frame, output)
    setup_logging(log_path).info("wrote %s (%d rows):\n%s", output, len(frame), frame.to_string(index=False))
    return frame


def table6(rows: list[dict[str, str]], metrics_files: list[str], scored_files: list[str | None], output: str,
           log_path: str | None = None, replicates: int = 1) -> pd.DataFrame:
    """Table 6: per row (policy display name, setting), the evaluation's PPL, reward (with its standard error),
    gold reward and repetition, and the training set's reward mean, std and mean-of-best (empty where the
    scored file is None: an online row has no fixed training set). ``metrics_files`` and ``scored_files``
    follow ``rows``, replicate-major (:func:`by_replicate`)."""
    records = []
    for metrics, scored in zip(by_replicate(metrics_files, len(rows), replicates),
                               by_replicate(scored_files, len(rows), replicates), strict=True):
        records.append([])
        for row, metrics_file, scored_file in zip(rows, metrics, scored, strict=True):
            stats = training_set_stats(read_scored_set(scored_file, ["prompt_id", "reward"])) if scored_file else {}
            records[-1].append({"policy": row["policy"], "setting": row["setting"],
                                **evaluation_columns(read_metrics(metrics_file)), **stats})
    return finish_table(records, TABLE6_COLUMNS, output, log_path)


def table7(rows: list[dict[str, Any]], metrics_files: list[str], output: str,
           log_path: str | None = None, replicates: int = 1) -> pd.DataFrame:
    """Table 7: the ranking-loss ablation, per row (policy, setting, rank_weight) the evaluation columns;
    ``metrics_files`` replicate-major (:func:`by_replicate`)."""
    records = [[{"policy": row["policy"], "setting": row["setting"], "rank_weight": row["rank_weight"],
                 **evaluation_columns(read_metrics(path))} for row, path in zip(rows, files, strict=True)]
               for files in by_replicate(metrics_files, len(rows), replicates)]
    return finish_table(records, TABLE7_COLUMNS, output, log_path)


def table2(rows: list[dict[str, str]], metrics_files: list[str], output: str,
           log_path: str | None = None, replicates: int = 1) -> pd.DataFrame:
    """Table 2: the main comparison. Per row (label, setting) the evaluation columns; ``metrics_files`` follow
    ``rows``, replicate-major (:func:`by_replicate`)."""
    records = [[{"policy": row["policy"], "setting": row["setting"], **evaluation_columns(read_metrics(path))}
                for row, path in zip(rows, files, strict=True)]
               for files in by_replicate(metrics_files, len(rows), replicates)]
    return finish_table(records, TABLE2_COLUMNS, output, log_path)


def table5(rows: list[dict[str, str]], accuracy_files: list[str], output: str,
           log_path: str | None = None, replicates: int = 1) -> pd.DataFrame:
    """Table 5: per row (label, setting) the share of test pairs whose chosen reply the scorer prefers
    (rrhf.evaluation.pair_accuracy); ``accuracy_files`` follow ``rows``, replicate-major (:func:`by_replicate`)."""
    records = []
    for files in by_replicate(accuracy_files, len(rows), replicates):
        records.append([])
        for row, path in zip(rows, files, strict=True):
            result = read_json(path)
            records[-1].append({"policy": row["policy"], "setting": row["setting"], "accuracy": result["accuracy"],
                                "pairs": result["pairs"]})
    return finish_table(records, TABLE5_COLUMNS, output, log_path)

