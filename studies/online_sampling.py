"""Does online RRHF (OP-k) game the reward model when it trains long enough, and what does +KL change?

The tiny default trains RRHF for 18 optimisation steps, too few for the policy to move far from rho. This
script trains DP, OP-k and OP-k+KL (for each given KL coefficient) for more epochs, in a scratch folder that
reuses the tiny default's data, models and DP samples (run `make run` first), and prints each row's reward,
gold reward and perplexity, paired over the same test prompts against DP (differences in standard errors in
brackets), with the KL from rho of the last round's samples:

    .venv/bin/python studies/online_sampling.py [--epochs 6] [--k 1] [--kl-coef 0.01 1.0]

About 3 minutes per KL coefficient plus 3 for DP and OP-k on a 2-core CPU at 6 epochs. One run, so its
differences are judged by their standard errors over prompts, not over replicates.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from rrhf.studies.findings.verdicts import paired_difference

REPO = Path(__file__).resolve().parents[1]


def prepare(workdir: Path, policy: str) -> None:
    """Copy the tiny default's built data, models and DP parts into ``workdir`` (times kept, so Snakemake
    reuses them)."""
    for part in ("resources", f"results/samples/{policy}/diverse_beam.parquet",
                 f"results/rewards/{policy}/diverse_beam.parquet", "results/rewards/provided.parquet"):
        source = REPO / part
        if not source.exists():
            raise SystemExit(f"{source} is missing: run `make run` first")
        target = workdir / part
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def run(workdir: Path, overrides: dict, targets: list[str]) -> None:
    """Snakemake on the tiny config plus ``overrides`` in ``workdir``; stops with its output when it fails."""
    (workdir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    command = [str(Path(sys.executable).parent / "snakemake"), *targets, "-s", str(REPO / "Snakefile"),
               "-d", str(workdir), "--configfile", str(REPO / "config/config.yaml"), str(workdir / "overrides.yaml"),
               "--cores", "2", "--quiet", "rules"]
    result = subprocess.run(command, capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1",
                                                                           "PATH": "/usr/bin:/bin"})
    if result.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


def row(evaluations: Path, setting: str, dp: Path, models: Path) -> str:
    metrics = json.loads((evaluations / setting / "metrics.json").read_text())
    (reward, reward_sems), (gold, gold_sems) = (paired_difference(evaluations / setting, dp, key)
                                                for key in ("reward", "gold_reward"))
    trained = json.loads((models / setting / "metrics.json").read_text())
    kl = trained.get("sample_kl_last_round")
    kl_text = f"{kl:8.3f}" if kl is not None and kl == kl else "       -"
    return (f"{setting:<12} {metrics['reward_mean']:7.3f} {metrics['gold_reward_mean']:7.3f} {metrics['ppl']:7.2f} "
            f"{reward:+7.3f} ({reward_sems:+5.1f}) {gold:+7.3f} ({gold_sems:+5.1f}) {kl_text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=6, help="RRHF epochs (the tiny default trains 2)")
    parser.add_argument("--k", type=int, default=1, help="OP-k: sample again every k optimisation steps")
    parser.add_argument("--kl-coef", type=float, nargs="+", default=[0.01, 1.0], help="beta values of OP-k+KL")
    parser.add_argument("--policy", default="instruct", help="models entry of the policy (the Alpaca role)")
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temporary one)")
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="online-sampling-"))
    online = f"OP-{args.k}"
    print(f"RRHF for {args.epochs:g} epochs on the tiny default's {args.policy} policy, in {root}")
    print(f"{'setting':<12} {'reward':>7} {'gold':>7} {'PPL':>7} {'reward - DP':>16} {'gold - DP':>16} "
          f"{'KL(end)':>8}")
    base = root / "base"
    prepare(base, args.policy)
    evaluations, models = base / "results/eval" / args.policy, base / "results/models" / args.policy
    training = {"rrhf": {"training": {"epochs": args.epochs}}}
    run(base, training, [f"results/eval/{args.policy}/{s}/metrics.json" for s in ("DP", online)])
    for setting in ("DP", online):
        print(row(evaluations, setting, evaluations / "DP", models))
    for kl_coef in args.kl_coef:
        folder = root / f"kl_{kl_coef:g}"
        prepare(folder, args.policy)
        run(folder, {**training, "resampling": {"kl_coef": kl_coef}},
            [f"results/eval/{args.policy}/{online}+KL/metrics.json"])
        print(row(folder / "results/eval" / args.policy, f"{online}+KL", evaluations / "DP",
                  folder / "results/models" / args.policy) + f"   beta {kl_coef:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
