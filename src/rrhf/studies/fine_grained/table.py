"""The fine-grained RLHF table (results/table_fine_grained.csv): per row the gold error rates and completeness,
the gold reward, the proxies (the holistic reward model's reward and the fine-grained reward models' judgements),
PPL and KL(pi || rho), with 95 % intervals over replicates (rrhf.report.tables)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from rrhf.io import atomic_path, read_json
from rrhf.report.tables import by_replicate, finish_table, read_metrics
from rrhf.studies.fine_grained.evaluation import FINE_GRAINED_COLUMNS

TABLE_FINE_GRAINED_COLUMNS = ["policy", "setting", *FINE_GRAINED_COLUMNS, "gold_reward", "reward", "ppl", "kl"]
REWARD_MODEL_COLUMNS = ["replicate", "kind", "held_out_replies", "held_out_segment_replies", "held_out_segments",
                        "held_out_error_share", "held_out_accuracy",
                        "held_out_error_precision", "held_out_error_recall", "held_out_error_f1", "held_out_macro_f1",
                        "held_out_accuracy_on_annotations", "held_out_pairs", "held_out_pair_accuracy", "mean", "std"]


def table_fine_grained(rows: list[dict[str, str]], metrics_files: list[str], fine_grained_files: list[str],
                       output: str, log_path: str | None = None, replicates: int = 1) -> pd.DataFrame:
    """The table: per row (policy, setting) its evaluation's metrics.json (reward, gold reward, PPL, KL) and its
    fine-grained evaluation's (rrhf.studies.fine_grained.evaluation); both file lists follow ``rows``,
    replicate-major."""
    records = []
    for metrics, fine in zip(by_replicate(metrics_files, len(rows), replicates),
                             by_replicate(fine_grained_files, len(rows), replicates), strict=True):
        records.append([])
        for row, metrics_file, fine_file in zip(rows, metrics, fine, strict=True):
            evaluation, measures = read_metrics(metrics_file), read_json(fine_file)
            records[-1].append({"policy": row["policy"], "setting": row["setting"],
                                **{column: measures[f"{column}_mean"] for column in FINE_GRAINED_COLUMNS},
                                "gold_reward": evaluation.get("gold_reward_mean"), "reward": evaluation["reward_mean"],
                                "ppl": evaluation["ppl"], "kl": evaluation.get("kl_to_initial_mean")})
    return finish_table(records, TABLE_FINE_GRAINED_COLUMNS, output, log_path)


def reward_model_table(metrics_files: list[str], kinds: list[str], replicates: list[int],
                       output: str) -> pd.DataFrame:
    """results/fine_grained_reward_models.csv: each fine-grained reward model's held-out metrics, one row per
    (replicate, kind)."""
    rows: list[dict[str, Any]] = []
    for path, kind, replicate in zip(metrics_files, kinds, replicates, strict=True):
        metrics = read_json(path)
        rows.append({"replicate": replicate, "kind": kind, **{k: metrics.get(k) for k in REWARD_MODEL_COLUMNS[2:]}})
    frame = pd.DataFrame(rows, columns=REWARD_MODEL_COLUMNS)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return frame
