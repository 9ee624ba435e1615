"""How noisy should the simulated annotators be? Their agreement against Appendix D's people, over a grid.

Appendix D reports that any two of its crowd workers gave the same verdict on 57.7 % of the shared pairs and
did not prefer opposite replies on 84.4 %. This script reads a run's exported pairs (every replicate's
results/[replicate{r}/]human_eval/pairs.parquet: run `make run`, or `make findings` for five replicates), lets
simulated annotators (rrhf.studies.human_evaluation.judgments) judge them at each noise and tie margin of the grid, and
prints their agreement on the shared pairs and the win / tie / lose shares of each comparison, averaged over
the replicates found and ``--draws`` noise seeds each:

    .venv/bin/python studies/annotator_agreement.py [--noise 0.05 0.1 0.2 0.3] [--tie-margin 0.05 0.1 0.15]

Seconds on a laptop; it reads and writes nothing but the pairs files.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from rrhf.studies.human_evaluation.human_tables import agreement, outcome_shares
from rrhf.studies.human_evaluation.judgments import simulated_judgments, unblind

APPENDIX_D = {"identical": 57.7, "non_contradicting": 84.4}


def judge(key: pd.DataFrame, noise: float, tie_margin: float, spread: float, seed: int) -> pd.DataFrame:
    """Every batch of ``key`` judged by simulated annotators, unblinded."""
    annotators = {"noise": noise, "noise_spread": spread, "tie_margin": tie_margin, "annotator_bias": {}}
    batches = sorted({int(b) for b in key["batch"] if b})
    rows = [{"file": "", "line": 0, "annotator": document["annotator"], "batch": batch, **judgment}
            for batch in batches for document in [simulated_judgments(key, batch, annotators, seed)]
            for judgment in document["judgments"]]
    return unblind(pd.DataFrame(rows), key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="the run's results folder")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.05, 0.1, 0.2, 0.3])
    parser.add_argument("--tie-margin", type=float, nargs="+", default=[0.05, 0.1, 0.15])
    parser.add_argument("--noise-spread", type=float, default=0.5)
    parser.add_argument("--draws", type=int, default=3, help="noise seeds per replicate")
    args = parser.parse_args()
    paths = sorted(Path(args.results).glob("**/human_eval/pairs.parquet"))
    if not paths:
        raise SystemExit(f"no {args.results}/**/human_eval/pairs.parquet: run `make run` first")
    keys = [pd.read_parquet(path) for path in paths]
    labels = keys[0].drop_duplicates("comparison").sort_values("comparison")[["comparison", "a", "b"]]
    print(f"{len(keys)} export(s); Appendix D: identical {APPENDIX_D['identical']} %, non-contradicting "
          f"{APPENDIX_D['non_contradicting']} %")
    for row in labels.itertuples():
        print(f"  comparison {row.comparison}: {row.a} against {row.b} (win / tie / lose, %)")
    for noise in args.noise:
        for tie_margin in args.tie_margin:
            agreements, shares = [], []
            for replicate, key in enumerate(keys):
                for draw in range(args.draws):
                    judged = judge(key, noise, tie_margin, args.noise_spread, 1000 * draw + replicate)
                    agreements.append(agreement(judged[judged["shared"]]))
                    counted = judged[~judged["shared"]]
                    shares.append({c: outcome_shares(counted.loc[counted["comparison"] == c, "outcome"])
                                   for c in labels["comparison"]})
            mean = {name: np.mean([a[name] for a in agreements]) for name in APPENDIX_D}
            table = "  ".join("/".join(f"{np.mean([s[c][o] for s in shares]):.0f}" for o in ("win", "tie", "lose"))
                              for c in labels["comparison"])
            print(f"noise {noise:<5} tie_margin {tie_margin:<5} identical {mean['identical']:5.1f}  "
                  f"non-contradicting {mean['non_contradicting']:5.1f}   {table}")


if __name__ == "__main__":
    main()
