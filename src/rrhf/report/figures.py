"""The report's figures (PNG, matplotlib's Agg backend, byte-identical for the same inputs): the training curves
of a model, the reward distributions of a table's training sets, and its rows' evaluation reward against gold."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from rrhf.io import atomic_path, read_parquet, setup_logging
from rrhf.scoring.training_sets import training_set_stats
from rrhf.statistics import spearman

# Columns of a train_log.parquet that count steps rather than measure training: not plotted.
COUNTER_COLUMNS = ("step", "epoch", "iteration", "round")


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display, the same pixels on every machine)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, output: str) -> None:
    """Write ``figure`` as a PNG atomically, with no metadata that could differ between runs (matplotlib's
    version), so the same inputs give a byte-identical file."""
    plt = pyplot()
    with atomic_path(output) as tmp:
        figure.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)


def metric_columns(log: pd.DataFrame) -> list[str]:
    """The numeric columns of a training log to plot: reward columns first (the paper's Figure 3 shows the
    average reward during training), then losses, then the rest in the log's order; counters left out."""
    numeric = [column for column in log.columns if column not in COUNTER_COLUMNS
               and pd.api.types.is_numeric_dtype(log[column]) and not pd.api.types.is_bool_dtype(log[column])]

    def rank(column: str) -> int:
        return 0 if "reward" in column or column == "score" else 1 if "loss" in column else 2

    return sorted(numeric, key=lambda column: (rank(column), numeric.index(column)))


def grid(count: int, columns: int) -> tuple[int, int]:
    """(rows, columns) of a grid of ``count`` panels at most ``columns`` wide."""
    columns = max(1, min(columns, count))
    return math.ceil(count / columns), columns


def panels(rows: int, columns: int, size: tuple[float, float], gaps: tuple[float, float] = (0.7, 0.75),
           margins: tuple[float, float, float, float] = (0.7, 0.25, 0.75, 0.55), **options):
    """A figure of ``rows`` x ``columns`` panels of ``size`` (inches), ``gaps`` (inches) between them and
    ``margins`` (left, right, top, bottom; inches) around them. Fixed margins instead of a layout engine, which
    takes most of the time of a figure of many panels."""
    plt = pyplot()
    (width, height), (gap_w, gap_h), (left, right, top, bottom) = size, gaps, margins
    total_w = left + columns * width + (columns - 1) * gap_w + right
    total_h = top + rows * height + (rows - 1) * gap_h + bottom
    figure, axes = plt.subplots(rows, columns, figsize=(total_w, total_h), squeeze=False, **options)
    figure.subplots_adjust(left=left / total_w, right=1 - right / total_w, top=1 - top / total_h,
                           bottom=bottom / total_h, wspace=gap_w / width, hspace=gap_h / height)
    return figure, axes


def hide_unused(axes, used: int, xlabel: str) -> None:
    """Hide the panels of a grid after the first ``used``; label the x axis of the lowest panel of each column
    (with its tick labels, which a shared x axis hides on inner panels)."""
    width = axes.shape[1]
    for index, axis in enumerate(axes.flat):
        if index >= used:
            axis.set_visible(False)
        elif index + width >= used:
            axis.set_xlabel(xlabel, fontsize=9)
            axis.xaxis.set_tick_params(labelbottom=True)


def plot_training_curves(model_dir: str, title: str, output: str, log_path: str | None = None) -> None:
    """Every numeric metric of a model's train_log.parquet by step, one panel each (rows where the metric is
    NaN skipped: metrics logged at intervals, such as RRHF's reward, are drawn as points)."""
    log = read_parquet(Path(model_dir) / "train_log.parquet", ["step"])
    columns = metric_columns(log)
    if not columns:
        raise ValueError(f"{model_dir}/train_log.parquet: no numeric metric column to plot; "
                         f"found {list(log.columns)}")
    rows, width = grid(len(columns), min(4, math.ceil(math.sqrt(1.5 * len(columns)))))  # wider than tall
    figure, axes = panels(rows, width, (3.1, 1.9), sharex=True)  # sparse metrics on the run's whole step axis
    for axis, column in zip(axes.flat, columns):
        values = log[["step", column]].replace([np.inf, -np.inf], np.nan).dropna()
        sparse = len(values) < len(log) or len(values) <= 25
        axis.plot(values["step"], values[column], marker="o" if sparse else None, markersize=3,
                  color="tab:red" if "reward" in column or column == "score" else "tab:blue")
        label = f"{column} (Figure 3)" if column == columns[0] and "reward" in column else column
        axis.set_title(label, fontsize=10)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
        if values.empty:
            axis.text(0.5, 0.5, "no values logged", ha="center", va="center", transform=axis.transAxes)
            axis.set_yticks([])
    hide_unused(axes, len(columns), "step")
    figure.suptitle(title, fontsize=11)
    save_figure(figure, output)
    setup_logging(log_path).info("wrote %s: %d metrics (%s) over %d logged steps of %s", output, len(columns),
                                 ", ".join(columns), len(log), model_dir)


def training_rewards(path: str, kind: str) -> pd.DataFrame:
    """A row's training rewards: its scored training set, or for an online row the responses sampled (and
    scored) during training (a model folder's online_samples.parquet)."""
    if kind == "online":
        return read_parquet(Path(path) / "online_samples.parquet", ["prompt_id", "reward"])
    return read_parquet(path, ["prompt_id", "reward"])


def plot_training_rewards(rows: list[dict[str, str]], title: str, output: str,
                          log_path: str | None = None) -> None:
    """One violin per row (``label``, ``path``, ``kind``: "scored" or "online") of its training rewards, with
    Table 6's statistics marked: the mean and standard deviation of all rewards and the mean over prompts of
    each prompt's best reward."""
    if not rows:
        raise ValueError(f"{output}: no row with training rewards to plot")
    frames = [training_rewards(row["path"], row["kind"]) for row in rows]
    label_width = 0.3 + 0.075 * max(len(row["label"]) for row in rows)  # inches, for the row labels at 9 pt
    figure, axes = panels(1, 1, (6.5, 0.42 * len(rows) + 0.3), margins=(label_width, 0.3, 0.4, 1.2))
    axis = axes[0, 0]
    positions = np.arange(len(rows))[::-1]
    finite = [frame["reward"][np.isfinite(frame["reward"])].to_numpy() for frame in frames]
    drawable = [i for i, values in enumerate(finite) if len(values) > 1 and np.ptp(values) > 0]
    if drawable:
        parts = axis.violinplot([finite[i] for i in drawable], positions=positions[drawable],
                                orientation="horizontal", widths=0.8, showextrema=False)
        for body, i in zip(parts["bodies"], drawable):
            body.set_facecolor("tab:orange" if rows[i]["kind"] == "online" else "tab:blue")
            body.set_alpha(0.35)
    lines = []
    for position, frame, values in zip(positions, frames, finite):
        stats = training_set_stats(frame.assign(reward=frame["reward"].where(np.isfinite(frame["reward"]))))
        mean, std, best = stats["train_reward_mean"], stats["train_reward_std"], stats["train_reward_max"]
        axis.plot([mean - std, mean + std], [position, position], color="black", linewidth=1.5)
        axis.plot(mean, position, "D", color="black", markersize=5)
        axis.plot(best, position, "^", color="tab:red", markersize=7)
        lines.append(f"{len(values)} rewards: mean {mean:.3g}, std {std:.3g}, max {best:.3g}")
    axis.set_yticks(positions, [row["label"] for row in rows], fontsize=9)
    axis.set_xlabel("reward (the reward model's score of a training response)")
    axis.plot([], [], "D-", color="black", markersize=5, label="mean ± std of all rewards")
    axis.plot([], [], "^", color="tab:red", markersize=7, label="mean of each prompt's best reward (Table 6's max)")
    if any(row["kind"] == "online" for row in rows):
        axis.fill_between([], [], color="tab:orange", alpha=0.35, label="sampled during training (online rows)")
    axis.grid(axis="x", alpha=0.3)
    axis.set_title(title, fontsize=11)
    figure.legend(fontsize=8, loc="lower center", ncol=2, frameon=False)
    save_figure(figure, output)
    logger = setup_logging(log_path)
    for row, line in zip(rows, lines):
        logger.info("%s (%s): %s", row["label"].replace("\n", " "), row["path"], line)
    logger.info("wrote %s", output)



def evaluation_rewards(path: str) -> pd.DataFrame:
    """An evaluation's generations: the reward model's ``reward`` and, where the dataset has one, the
    ``gold_reward``."""
    frame = read_parquet(path, ["prompt_id", "reward"])
    return frame[["reward", *(["gold_reward"] if "gold_reward" in frame.columns else [])]]


def has_gold(frame: pd.DataFrame) -> bool:
    return "gold_reward" in frame.columns and bool(frame["gold_reward"].notna().any())


def plot_evaluation_rewards(rows: list[dict[str, str]], title: str, output: str,
                            log_path: str | None = None) -> dict[str, Any]:
    """Per row (``label``, ``path`` of its generations.parquet), one panel: the reward of each test generation
    against its gold reward, with their Spearman correlation; a histogram of the reward where there is no gold
    reward (real data). Returns {label: {"n", "spearman"}}."""
    if not rows:
        raise ValueError(f"{output}: no evaluated row to plot")
    frames = [evaluation_rewards(row["path"]) for row in rows]
    gold = any(has_gold(frame) for frame in frames)
    height, width = grid(len(rows), min(5, math.ceil(math.sqrt(1.6 * len(rows)))))  # wider than tall
    figure, axes = panels(height, width, (2.7, 2.3), gaps=(0.35 if gold else 0.6, 0.85),
                          margins=(0.75, 0.2, 0.85, 0.6), sharex=True, sharey=gold)
    summary = {}
    for axis, row, frame in zip(axes.flat, rows, frames):
        if has_gold(frame):
            pairs = frame[["reward", "gold_reward"]].dropna()
            rho = spearman(pairs["reward"], pairs["gold_reward"])
            axis.scatter(pairs["reward"], pairs["gold_reward"], s=6, alpha=0.5, color="tab:blue", linewidths=0)
            axis.set_title(f"{row['label']}\nSpearman {rho:.2f}, n = {len(pairs)}", fontsize=9)
            summary[row["label"]] = {"n": len(pairs), "spearman": rho}
        else:
            rewards = frame["reward"].dropna()
            axis.hist(rewards, bins=30, color="tab:blue", alpha=0.7)
            axis.set_title(f"{row['label']}\nno gold reward, n = {len(rewards)}", fontsize=9)
            summary[row["label"]] = {"n": len(rewards), "spearman": None}
        axis.grid(alpha=0.3)
        axis.tick_params(labelsize=8)
    hide_unused(axes, len(rows), "reward (reward model)")
    for axis in axes[:, 0]:
        axis.set_ylabel("gold reward" if gold else "test prompts", fontsize=9)
    figure.suptitle(title, fontsize=11)
    save_figure(figure, output)
    logger = setup_logging(log_path)
    for label, values in summary.items():
        logger.info("%s: %s", label.replace("\n", " "), values)
    logger.info("wrote %s", output)
    return summary
