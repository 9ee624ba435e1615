"""Figures of results over replicates: each table row's mean with its 95 % interval as an error bar, and each
claim's effect with its interval (a forest plot of results/findings.csv). PNG, byte-identical for the same
inputs (rrhf.report.figures.save_figure)."""

from __future__ import annotations

import pandas as pd

from rrhf.io import setup_logging
from rrhf.report.figures import panels, pyplot, save_figure

# The metrics a table figure shows, where the table has them (with their interval columns).
FIGURE_METRICS = ("reward", "gold_reward", "ppl", "accuracy")
VERDICT_COLOURS = {"holds": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:gray"}


def plot_table_intervals(table: str, title: str, output: str, log_path: str | None = None) -> list[str]:
    """One panel per metric of ``table`` (a CSV over replicates, with ``{metric}_ci95`` columns): each row's mean
    as a point with its 95 % interval as an error bar (none where a row has no interval). Returns the metrics
    plotted."""
    frame = pd.read_csv(table)
    metrics = [m for m in FIGURE_METRICS if m in frame.columns and f"{m}_ci95" in frame.columns
               and frame[m].notna().any()]
    if not metrics:
        raise ValueError(f"{table}: no metric with an interval column ({', '.join(FIGURE_METRICS)}_ci95); is it a "
                         "table over replicates (config replicates >= 2)?")
    labels = [f"{policy} {setting}" for policy, setting in zip(frame["policy"], frame["setting"], strict=True)]
    height = max(1.6, 0.28 * len(labels))
    figure, axes = panels(1, len(metrics), (2.6, height), gaps=(0.3, 0.5), margins=(2.4, 0.2, 0.8, 0.55),
                          sharey=True)
    positions = list(range(len(labels)))[::-1]
    for axis, metric in zip(axes[0], metrics):
        means, half_widths = frame[metric], frame[f"{metric}_ci95"].fillna(0)
        axis.errorbar(means, positions, xerr=half_widths, fmt="o", markersize=4, capsize=3, color="tab:blue")
        axis.set_xlabel(metric, fontsize=9)
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
    axes[0][0].set_yticks(positions, labels)
    replicates = int(frame["replicates"].iloc[0]) if "replicates" in frame.columns else 1
    figure.suptitle(f"{title}\nmean over {replicates} replicates, 95 % interval", fontsize=10)
    save_figure(figure, output)
    setup_logging(log_path).info("wrote %s (%s over %d rows)", output, ", ".join(metrics), len(labels))
    return metrics


def plot_findings(findings: str, title: str, output: str, log_path: str | None = None) -> dict[str, int]:
    """Each claim of results/findings.csv as a row: its effect (row minus versus) with its 95 % interval, on
    one panel per metric (the metrics' scales differ), coloured by verdict, with zero marked. Returns the count
    of each verdict."""
    frame = pd.read_csv(findings, keep_default_na=False, na_values=[""])  # an id "null" stays text
    metrics = list(dict.fromkeys(frame["metric"]))
    heights = [0.28 * len(frame[frame["metric"] == m]) + 0.3 for m in metrics]  # inches: a panel per metric
    gap, top, bottom = 0.75, 0.9, 0.5
    total = top + bottom + sum(heights) + gap * (len(metrics) - 1)
    figure, axes = pyplot().subplots(len(metrics), 1, figsize=(8.0, total), squeeze=False,
                                     gridspec_kw={"height_ratios": heights})
    figure.subplots_adjust(left=0.4, right=0.96, top=1 - top / total, bottom=bottom / total,
                           hspace=gap / (sum(heights) / len(heights)))
    for axis, metric in zip(axes[:, 0], metrics):
        claims = frame[frame["metric"] == metric]
        positions = list(range(len(claims)))[::-1]
        for position, (_, claim) in zip(positions, claims.iterrows()):
            colour = VERDICT_COLOURS.get(claim["verdict"], "black")
            has_interval = pd.notna(claim["ci_low"])
            error = ([[claim["effect"] - claim["ci_low"]], [claim["ci_high"] - claim["effect"]]] if has_interval
                     else None)
            axis.errorbar([claim["effect"]], [position], xerr=error, fmt="o", markersize=4, capsize=3, color=colour)
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_yticks(positions, [f"{c} ({d})" for c, d in zip(claims["id"], claims["direction"], strict=True)],
                        fontsize=7)
        axis.set_xlabel(f"effect on {metric} (row - versus)", fontsize=8)
        axis.tick_params(axis="x", labelsize=7)
        axis.grid(alpha=0.3)
    counts = {verdict: int((frame["verdict"] == verdict).sum()) for verdict in VERDICT_COLOURS}
    replicates = int(frame["replicates"].iloc[0])
    figure.suptitle(f"{title}\n{replicates} replicate(s): " + ", ".join(f"{v} {n}" for v, n in counts.items())
                    + " (green holds, red contradicted, grey inconclusive)", fontsize=9)
    save_figure(figure, output)
    setup_logging(log_path).info("wrote %s: %s", output, counts)
    return counts
