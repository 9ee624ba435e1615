"""Each claim of config/findings.yaml measured over replicates: results/findings.csv and its verdicts.

Within a replicate a claim's effect is ``row - versus`` on its metric: for reward, gold reward and the
fine-grained measures the mean of the paired differences over the same test prompts (their generations.parquet
or fine-grained segments.parquet, joined on prompt_id); for the other metrics (perplexity, repetition, Table 5
accuracy, training-set statistics) the difference of the two rows' values. Over replicates the effect is the
mean of the replicates' effects with its 95 % t-interval (rrhf.statistics.t_interval), and the verdict is

- **holds**: the interval excludes zero (or the claim's ``than``) on the claimed side;
- **contradicted**: the interval excludes it on the other side;
- **inconclusive**: the interval contains it, or there is one replicate of a metric that is one number per row
  (no interval; the note says so).

With one replicate (config/real.yaml's run) a per-prompt metric's interval is the 95 % t-interval of the mean of
its paired per-prompt differences: it holds the variation of the test prompts, not that of another training or
sampling seed, and the note says so.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from rrhf.io import atomic_path, read_json, read_parquet, setup_logging
from rrhf.scoring.training_sets import read_scored_set, training_set_stats
from rrhf.statistics import verdict
from rrhf.studies.findings.claims import METRICS

FINDINGS_COLUMNS = ["id", "claim", "source", "metric", "row", "versus", "direction", "than", "replicates", "effect",
                    "ci_low", "ci_high", "verdict", "note", "replicates_to_settle", "replicate_effects"]
MOST_REPLICATES = 1000  # replicates_to_settle stays empty beyond this


def row_value(path: str, metric: str) -> pd.Series | float:
    """A row's value of ``metric`` in one replicate: per test prompt (a Series indexed by prompt_id) for reward,
    gold reward and the fine-grained measures, else one number."""
    source = METRICS[metric][1]
    if metric == "log_ppl":  # an empty reply (no tokens) has no perplexity: NaN, its prompt left out when paired
        frame = read_parquet(path, ["prompt_id", "nll", "n_tokens"]).drop_duplicates("prompt_id")
        tokens = frame["n_tokens"].astype(float).where(frame["n_tokens"] > 0)
        return (frame["nll"].astype(float) / tokens).set_axis(frame["prompt_id"])
    if source in ("generations.parquet", "segments.parquet"):
        frame = read_parquet(path, ["prompt_id", metric])
        return frame.drop_duplicates("prompt_id").set_index("prompt_id")[metric].astype(float)
    if source == "scored":
        return float(training_set_stats(read_scored_set(path, ["prompt_id", "reward"]))[metric])
    value = read_json(path).get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{path}: metric {metric} is {value}")
    return float(value)


def prompt_differences(row: pd.Series, versus: pd.Series, claim: str, metric: str = "reward") -> pd.Series:
    """``row - versus`` per test prompt (both indexed by prompt_id); raises naming the claim when the two rows
    answered different prompts or a value is missing (for ``log_ppl``, prompts where either reply is empty are
    left out instead)."""
    if set(row.index) != set(versus.index):
        raise ValueError(f"claim {claim}: the two rows answered different test prompts "
                         f"({len(set(row.index) ^ set(versus.index))} differ); they cannot be paired")
    difference = row - versus.loc[row.index]
    if metric == "log_ppl":
        return difference.dropna()
    if difference.isna().any():
        raise ValueError(f"claim {claim}: {int(difference.isna().sum())} prompts have no value (is there a gold "
                         "reward on this dataset?)")
    return difference


def replicate_effect(row: pd.Series | float, versus: pd.Series | float, claim: str, metric: str = "reward") -> float:
    """``row - versus`` in one replicate: the mean of the per-prompt differences when both are per prompt
    (:func:`prompt_differences`), else the difference of the two numbers."""
    if isinstance(row, pd.Series):
        return float(prompt_differences(row, versus, claim, metric).mean())
    return float(row - versus)


def paired_difference(a: Path, b: Path, key: str) -> tuple[float, float]:
    """(mean of a - b, that mean in within-run standard errors) for metric ``key`` (reward or gold_reward) of two
    evaluation folders of the same test prompts, paired by prompt: one run's view, for studies/."""
    first, second = (row_value(str(Path(folder) / "generations.parquet"), key) for folder in (a, b))
    difference = prompt_differences(first, second, f"{a} - {b}")
    sem = difference.std(ddof=1) / math.sqrt(len(difference))
    if not sem:  # the same on every prompt (e.g. two rows that trained identically): no difference at all
        return float(difference.mean()), 0.0 if difference.mean() == 0 else math.copysign(math.inf, difference.mean())
    return float(difference.mean()), float(difference.mean() / sem)


def replicates_to_settle(effects: list[float]) -> int | None:
    """The fewest replicates (>= 2) whose 95 % interval would exclude zero if the effect's mean and spread over
    replicates were what ``effects`` show: the smallest N with t_{0.975, N-1} * sd / sqrt(N) < |mean|. None with
    fewer than 2 effects, a zero mean, or more than :data:`MOST_REPLICATES`. An estimate, from few replicates."""
    from scipy import stats

    if len(effects) < 2:
        return None
    mean, sd = float(np.mean(effects)), float(np.std(effects, ddof=1))
    if mean == 0:
        return None
    if sd == 0:
        return 2
    for count in range(2, MOST_REPLICATES + 1):
        if stats.t.ppf(0.975, count - 1) * sd / math.sqrt(count) < abs(mean):
            return count
    return None


def measure_claim(claim: dict[str, Any], value: Callable[[str, str], pd.Series | float] = row_value) -> dict[str, Any]:
    """One row of findings.csv from a claim as the rule passes it: ``id``, ``claim``, ``source``, ``metric``,
    ``row`` and ``versus`` (labels), ``direction`` and ``files``: per replicate [row's file, versus's file].
    ``value(path, metric)`` reads a row's value (:func:`row_value`)."""
    if claim["metric"] == "net_win":  # both files are the replicate's judgments of the comparison (Table 3)
        from rrhf.studies.human_evaluation.human_tables import net_win

        effects = [net_win(read_parquet(row_file, ["a", "b", "shared", "outcome"]), *claim["sides"])
                   for row_file, _ in claim["files"]]
    else:
        values = [(value(row_file, claim["metric"]), value(versus_file, claim["metric"]))
                  for row_file, versus_file in claim["files"]]
        effects = [replicate_effect(row, versus, claim["id"], claim["metric"]) for row, versus in values]
    than = claim.get("than", 0.0)
    judged = verdict(effects, claim["direction"], than)
    if len(effects) == 1 and claim["metric"] != "net_win" and isinstance(values[0][0], pd.Series):
        differences = prompt_differences(*values[0], claim["id"], claim["metric"])
        judged = verdict(list(differences), claim["direction"], than)
        judged["note"] = "; ".join(filter(None, [
            f"one replicate: the interval is over the {len(differences)} test prompts' paired differences, "
            "not over training or sampling seeds", judged["note"]]))
    return {**{key: claim[key] for key in ("id", "claim", "source", "metric", "row", "versus", "direction")},
            "than": than, "replicates": len(effects), **judged,
            "replicates_to_settle": replicates_to_settle(effects),
            "replicate_effects": " ".join(f"{effect:.6g}" for effect in effects)}


def findings(claims: list[dict[str, Any]], output: str, log_path: str | None = None) -> pd.DataFrame:
    """results/findings.csv: every claim measured (:func:`measure_claim`), written atomically."""
    if not claims:
        raise ValueError(f"{output}: no claims to measure")
    value = functools.lru_cache(maxsize=None)(row_value)  # a row's file serves many claims: read it once here
    frame = pd.DataFrame([measure_claim(claim, value) for claim in claims], columns=FINDINGS_COLUMNS)
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    counts = frame["verdict"].value_counts().to_dict()
    setup_logging(log_path).info("wrote %s (%d claims: %s):\n%s", output, len(frame), counts,
                                 frame[["id", "effect", "ci_low", "ci_high", "verdict"]].to_string(index=False))
    return frame
