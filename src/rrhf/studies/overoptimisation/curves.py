"""Over-optimisation (Gao et al., 2022): the proxy and the gold reward of a policy against sqrt(KL(pi || rho)).

A policy that optimises the reward model moves away from its initial policy rho; Gao et al. plot both rewards
against d = sqrt(KL) and find the proxy rising throughout while gold rises, peaks and falls. Here, for one
initial policy:

- best-of-n, n = 1, 2, ..., from one set of top-p samples per test prompt (the best of the first n), at the
  analytic KL of best-of-n, log n - (n - 1) / n (Gao et al., eq. 1; Stiennon et al., 2020);
- PPO (and PPO-noKL) along training: each iteration's rollouts (their mean reward-model score, gold reward
  and sampled KL);
- online RRHF (OP-k, OP-k+KL) along training: each sampling round's samples (their mean score, gold reward and
  exact KL summed along each sample);
- any evaluated setting as a point: its greedy test replies (mean score, gold and exact KL,
  ``kl_to_initial_mean``).

Each row says what it was measured on (``measured_on``), as the bases differ: test prompts for best-of-n and
the points, training prompts for the curves. Each row of another optimiser also gets best-of-n's gold at its KL
(:func:`with_best_of_n_at_same_kl`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rrhf.data.dataset_facts import gold_source
from rrhf.data.gold_reward import gold_rewards
from rrhf.io import atomic_path, read_parquet, setup_logging
from rrhf.report.figures import pyplot, save_figure

COLUMNS = ["optimiser", "kind", "step", "kl", "sqrt_kl", "proxy_reward", "gold_reward", "measured_on"]
COMPARED = "best_of_n_gold_at_same_kl"


def best_of_n_kl(n: int) -> float:
    """The analytic KL(best-of-n || rho) = log n - (n - 1) / n, in nats (0 for n = 1)."""
    return math.log(n) - (n - 1) / n


def best_of_n_curve(samples: pd.DataFrame, ns: list[int]) -> pd.DataFrame:
    """Best-of-n for each n of ``ns``: per prompt the highest-``reward`` sample of the first n (``response_index``
    < n; the first on ties), then the means over prompts of its ``reward`` and ``gold_reward``.

    ``samples`` has prompt_id, response_index, reward and gold_reward, with at least max(ns) samples per
    prompt. Returns one row per n in :data:`COLUMNS` (``step`` = n).
    """
    have = int(samples.groupby("prompt_id")["response_index"].nunique().min())
    if max(ns) > have:
        raise ValueError(f"best-of-{max(ns)} needs {max(ns)} samples per prompt; the samples have {have}")
    rows = []
    for n in ns:
        first = samples[samples["response_index"] < n].sort_values(["prompt_id", "response_index"])
        best = first.loc[first.groupby("prompt_id", sort=False)["reward"].idxmax()]
        rows.append({"optimiser": "best-of-n", "kind": "curve", "step": n, "kl": best_of_n_kl(n),
                     "proxy_reward": float(best["reward"].mean()), "gold_reward": float(best["gold_reward"].mean()),
                     "measured_on": "test prompts, best of n top-p samples (analytic KL)"})
    return _finish(rows)


def ppo_curve(train_log: pd.DataFrame, name: str) -> pd.DataFrame:
    """PPO along training: one row per iteration of a PPO train_log (``reward`` = the rollouts' mean reward-model
    score, ``gold_reward``, ``kl`` = their mean sampled KL). An iteration's rollouts are drawn before its
    updates, so ``step`` is the optimiser step they were drawn at: the previous iteration's ``step`` (0 first)."""
    drawn_at = [0, *train_log["step"].iloc[:-1].astype(int)]
    rows = [{"optimiser": name, "kind": "curve", "step": step, "kl": float(kl), "proxy_reward": float(reward),
             "gold_reward": float(gold), "measured_on": "training prompts, PPO rollouts (sampled KL)"}
            for step, reward, gold, kl in zip(drawn_at, train_log["reward"], train_log["gold_reward"],
                                              train_log["kl"])]
    return _finish(rows)


def online_curve(samples: pd.DataFrame, name: str) -> pd.DataFrame:
    """Online RRHF along training: per sampling round of its online_samples (``step`` where the round was drawn),
    the mean ``reward``, ``gold_reward`` and ``kl`` of the round's samples."""
    means = samples.groupby("round").agg(step=("step", "first"), kl=("kl", "mean"), proxy_reward=("reward", "mean"),
                                         gold_reward=("gold_reward", "mean")).reset_index(drop=True)
    means = means.assign(optimiser=name, kind="curve", measured_on="training prompts, online samples (exact KL)")
    return _finish(means.to_dict("records"))


def evaluation_point(metrics: dict[str, Any], name: str) -> pd.DataFrame:
    """A setting's evaluation as one point: its greedy test replies' mean reward, gold and KL to rho."""
    kl = metrics.get("kl_to_initial_mean")
    if kl is None:
        raise ValueError(f"the evaluation of {name} has no kl_to_initial_mean (evaluated before KL was measured?)")
    return _finish([{"optimiser": name, "kind": "point", "step": None, "kl": kl,
                     "proxy_reward": metrics["reward_mean"], "gold_reward": metrics["gold_reward_mean"],
                     "measured_on": "test prompts, greedy replies (exact KL)"}])


def _finish(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["kl"] = frame["kl"].astype(float).clip(lower=0.0)
    frame["sqrt_kl"] = frame["kl"] ** 0.5
    return frame[COLUMNS]


def with_best_of_n_at_same_kl(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :data:`COMPARED`: for each row that is not best-of-n, best-of-n's gold reward at the same
    sqrt(KL), interpolated linearly between its n (empty beyond best-of-max(n)'s KL), so that "does best-of-n
    reach more gold than RL at equal KL?" (Gao et al.) is one subtraction per row."""
    best = frame[frame["optimiser"] == "best-of-n"].sort_values("sqrt_kl")
    reach = best["sqrt_kl"].max()
    compared = [float(np.interp(d, best["sqrt_kl"], best["gold_reward"])) if name != "best-of-n" and d <= reach
                else math.nan for name, d in zip(frame["optimiser"], frame["sqrt_kl"])]
    return frame.assign(**{COMPARED: compared})


def write_overoptimisation(best_of_n_samples: str, best_of: list[int], curves: dict[str, str],
                           points: dict[str, str], output: str, log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: ``results/overoptimisation.csv``, rows in :data:`COLUMNS`.

    ``best_of_n_samples`` is a best-of-n evaluation's samples.parquet (gold rewards computed here, from the
    dataset its provenance records), ``curves`` maps a trained setting's name to its train_log.parquet (PPO) or
    online_samples.parquet (OP-k), ``points`` a setting's name to its evaluation metrics.json.
    """
    setup_logging(log_path)
    samples = read_parquet(best_of_n_samples, ["prompt_id", "prompt", "response_index", "response", "reward"])
    samples["gold_reward"] = gold_rewards(samples, gold_source(best_of_n_samples))
    parts = [best_of_n_curve(samples, sorted(best_of))]
    for name, path in curves.items():
        if Path(path).name == "online_samples.parquet":
            parts.append(online_curve(read_parquet(path, ["step", "round", "reward", "gold_reward", "kl"]), name))
        else:
            parts.append(ppo_curve(read_parquet(path, ["step", "reward", "gold_reward", "kl"]), name))
    for name, path in points.items():
        parts.append(evaluation_point(json.loads(Path(path).read_text()), name))
    frame = with_best_of_n_at_same_kl(pd.concat(parts, ignore_index=True))
    with atomic_path(output) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    setup_logging(log_path).info("wrote %s:\n%s", output, frame.to_string(index=False))
    return frame


def plot_overoptimisation(table: str, output: str, log_path: str | None = None) -> None:
    """Stage entry point: the figure of ``results/overoptimisation.csv``, proxy (left) and gold reward (right)
    against sqrt(KL): a line per optimiser along training (best-of-n over n), a marker per evaluated setting."""
    setup_logging(log_path)
    plt = pyplot()
    frame = pd.read_csv(table)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for axis, column, title in zip(axes, ["proxy_reward", "gold_reward"], ["proxy (reward model)", "gold"]):
        for name, group in frame[frame["kind"] == "curve"].groupby("optimiser", sort=False):
            axis.plot(group["sqrt_kl"], group[column], marker="o", markersize=3, label=name)
        points = frame[frame["kind"] == "point"]
        axis.scatter(points["sqrt_kl"], points[column], color="black", marker="x", zorder=3)
        for _, point in points.iterrows():
            axis.annotate(point["optimiser"], (point["sqrt_kl"], point[column]), fontsize=7,
                          textcoords="offset points", xytext=(3, 3))
        axis.set_xlabel("sqrt(KL(pi || rho)), nats^0.5")
        axis.set_ylabel(f"{title} reward")
        axis.set_title(f"{title} reward against distance from rho")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, output)
