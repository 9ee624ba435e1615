"""Statistics shared by training, evaluation and the report: ranks, correlations, pair agreement, means."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd


def average_ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks of ``values``, ties sharing the mean of their ranks ([10, 20, 10] -> [1.5, 3, 1.5])."""
    return pd.Series(values, dtype=float).rank(method="average").tolist()


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson correlation of two equal-length sequences; NaN when either is constant or shorter than 2."""
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} values against {len(y)}")
    x, y = pd.Series(x, dtype=float), pd.Series(y, dtype=float)
    if len(x) < 2 or x.nunique() < 2 or y.nunique() < 2:
        return math.nan
    return float(x.corr(y))


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation: the correlation of the average ranks (ties share theirs); NaN where either
    side is constant or has fewer than 2 values."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} values against {len(y)}")
    rx, ry = pd.Series(x, dtype=float).rank(), pd.Series(y, dtype=float).rank()
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def ordered_like_gold(reward_a: Sequence[float], reward_b: Sequence[float], gold_a: Sequence[float],
                      gold_b: Sequence[float]) -> tuple[int, int]:
    """(pairs the rewards order like gold, pairs whose gold differs); a reward tie counts as wrong."""
    right = total = 0
    for ra, rb, ga, gb in zip(reward_a, reward_b, gold_a, gold_b, strict=True):
        if ga == gb:
            continue
        total += 1
        right += (ra - rb) * (ga - gb) > 0
    return right, total


def mean_and_sem(values: pd.Series) -> tuple[float | None, float | None]:
    """(mean, standard error of the mean = sample std / sqrt(n)) of the non-missing values; None where undefined."""
    values = values.dropna().astype(float)
    mean = float(values.mean()) if len(values) else None
    sem = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return mean, sem


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None]:
    """(mean, half-width of the two-sided ``confidence`` t-interval of the mean) of replicate values: the
    half-width is t_{(1+confidence)/2, n-1} * sd / sqrt(n) (scipy's Student t), None for fewer than 2 values.
    Values that are all equal have half-width 0."""
    from scipy import stats

    values = [float(v) for v in values]
    if not values:
        raise ValueError("t_interval: no values")
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    sd = float(np.std(values, ddof=1))
    return mean, float(stats.t.ppf((1 + confidence) / 2, len(values) - 1) * sd / math.sqrt(len(values)))


def interval_text(mean: float | None, half_width: float | None) -> str:
    """``mean ± half_width`` at the precision the interval warrants: the half-width to two significant digits
    and the mean to the same decimal place (2.71111, 0.0995656 -> "2.71 ± 0.10"); the mean to 4 significant
    digits when there is no interval, "-" when there is no mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    if half_width is None or (isinstance(half_width, float) and math.isnan(half_width)):
        return f"{mean:.4g}"
    if half_width == 0:
        return f"{mean:.4g} ± 0"
    rounded = float(f"{abs(half_width):.2g}")  # 0.0995656 -> 0.1: two significant digits, then its decimals
    decimals = max(0, 1 - math.floor(math.log10(rounded)))
    return f"{mean:.{decimals}f} ± {half_width:.{decimals}f}"


def verdict(effects: list[float], direction: str, than: float = 0.0) -> dict[str, Any]:
    """Mean effect, its 95 % interval, the verdict and a note, from the replicates' effects of a claim whose
    ``direction`` is "higher" (row minus versus above ``than``) or "lower" (below it)."""
    mean, half_width = t_interval(effects)
    if half_width is None:
        return {"effect": mean, "ci_low": None, "ci_high": None, "verdict": "inconclusive",
                "note": "one replicate: no interval, so no verdict (run with replicates >= 2)"}
    low, high = mean - half_width, mean + half_width
    sign = 1 if direction == "higher" else -1
    bound = "zero" if than == 0 else f"{than:g}"
    if sign * (low - than) > 0 and sign * (high - than) > 0:
        result, note = "holds", ""
    elif sign * (low - than) < 0 and sign * (high - than) < 0:
        result, note = "contradicted", f"the interval excludes {bound} on the other side"
    else:
        result, note = "inconclusive", f"the interval contains {bound}"
    return {"effect": mean, "ci_low": low, "ci_high": high, "verdict": result, "note": note}
