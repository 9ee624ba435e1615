"""results/table_methods.csv: RRHF and its successors on the same training sets, beside PPO and best-of-n.

Per row (policy, setting): the evaluation's perplexity, reward, gold reward and KL(pi || rho) of the test
replies, and what training the row's model took (the wall-clock seconds and the peak memory Snakemake measured
for its jobs: a method's training and its reference stage; empty for a row that trains nothing). Over replicates
every number is a mean, with 95 % intervals beside ppl, reward, gold_reward and kl (rrhf.report.tables).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from rrhf.report.tables import by_replicate, evaluation_columns, finish_table, read_metrics

TABLE_METHODS_COLUMNS = ["policy", "setting", "ppl", "reward", "reward_sem", "gold_reward", "gold_reward_sem", "kl",
                         "train_seconds", "train_peak_memory_mb"]


def training_cost(benchmarks: list[str]) -> dict[str, float | None]:
    """(summed seconds, largest peak resident memory in MB) of a row's jobs from their Snakemake benchmark files;
    None for a row without any."""
    if not benchmarks:
        return {"train_seconds": None, "train_peak_memory_mb": None}
    frames = [pd.read_csv(path, sep="\t") for path in benchmarks]
    return {"train_seconds": float(sum(frame["s"].iloc[-1] for frame in frames)),
            "train_peak_memory_mb": float(max(frame["max_rss"].iloc[-1] for frame in frames))}


def table_methods(rows: list[dict[str, Any]], metrics_files: list[str], output: str, log_path: str | None = None,
                  replicates: int = 1) -> pd.DataFrame:
    """The methods table. ``rows`` give policy, setting and, per replicate, ``benchmarks`` (a list of lists, one
    per replicate); ``metrics_files`` follow ``rows``, replicate-major."""
    records = []
    for replicate, files in enumerate(by_replicate(metrics_files, len(rows), replicates)):
        records.append([])
        for row, path in zip(rows, files, strict=True):
            metrics = read_metrics(path)
            columns = evaluation_columns(metrics)
            records[-1].append({"policy": row["policy"], "setting": row["setting"],
                                **{key: columns[key] for key in ("ppl", "reward", "reward_sem", "gold_reward",
                                                                 "gold_reward_sem")},
                                "kl": metrics.get("kl_to_initial_mean"),
                                **training_cost(row["benchmarks"][replicate])})
    return finish_table(records, TABLE_METHODS_COLUMNS, output, log_path)
