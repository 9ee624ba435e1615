"""results/prompt_formats.csv: one untrained policy's greedy replies to the same test prompts, read in each prompt
format (rrhf.models.prompt_formats: HH's raw text, or the model's chat template), side by side: what the choice of
a real model's format does before any training (docs/real_model.md)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rrhf.io import atomic_path, read_json, read_parquet, read_provenance, setup_logging
from rrhf.statistics import verdict

COLUMNS = ["prompt_format", "prompts", "reward_mean", "reward_sem", "reward_vs_raw", "reward_vs_raw_ci_low",
           "reward_vs_raw_ci_high", "ppl", "response_tokens", "empty_share", "ran_into_next_turn_share",
           "filled_max_new_tokens_share"]


def format_row(folder: str | Path, max_new_tokens: int) -> tuple[dict, pd.DataFrame]:
    """(the summary of one format's evaluation folder, its generations by prompt_id): reward and its standard
    error, perplexity, reply length; the share of replies that are empty, that went on into a turn of their own
    (cut at "Human:" / "Assistant:", rrhf.text.cut_at_turn) and that were still going at ``max_new_tokens``."""
    frame = read_parquet(Path(folder) / "generations.parquet", ["prompt_id", "raw_response", "response", "reward",
                                                                "n_tokens"])
    metrics = read_json(Path(folder) / "metrics.json")
    format = read_provenance(Path(folder) / "generations.parquet").get("prompt_format", "raw")
    row = {"prompt_format": format, "prompts": len(frame), "reward_mean": metrics["reward_mean"],
           "reward_sem": metrics["reward_sem"], "ppl": metrics["ppl"], "response_tokens": metrics["response_tokens"],
           "empty_share": float((frame["n_tokens"] == 0).mean()),
           "ran_into_next_turn_share": float((frame["raw_response"] != frame["response"]).mean()),
           "filled_max_new_tokens_share": float((frame["n_tokens"] >= max_new_tokens).mean())}
    return row, frame.set_index("prompt_id")


def compare_prompt_formats(folders: list[str], output: str, max_new_tokens: int,
                           log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: one row per evaluation folder (:func:`format_row`), with each format's reward minus raw's,
    paired over the same test prompts, and its 95 % t-interval; written to ``output`` (CSV)."""
    log = setup_logging(log_path)
    rows, frames = zip(*(format_row(folder, max_new_tokens) for folder in folders))
    by_format = dict(zip((row["prompt_format"] for row in rows), frames))
    if "raw" not in by_format:
        raise ValueError(f"{output}: no evaluation in the raw format among {list(by_format)}")
    raw = by_format["raw"]
    for row, frame in zip(rows, frames):
        if set(frame.index) != set(raw.index):
            raise ValueError(f"{output}: the {row['prompt_format']} and raw evaluations answered different prompts")
        # paired over prompts and judged as a finding's per-prompt effect is (rrhf.statistics.verdict)
        judged = verdict(list(frame["reward"] - raw.loc[frame.index, "reward"]), "higher")
        row.update(reward_vs_raw=judged["effect"], reward_vs_raw_ci_low=judged["ci_low"],
                   reward_vs_raw_ci_high=judged["ci_high"])
    table = pd.DataFrame(sorted(rows, key=lambda row: row["prompt_format"] != "raw"), columns=COLUMNS)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    log.info("wrote %s:\n%s", output, table.to_string(index=False))
    return table
