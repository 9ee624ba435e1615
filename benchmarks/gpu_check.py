"""`make gpu-check`: every path of the workflow on one GPU, each job's peak memory against the memory plan.

Runs the workflow with config/config.yaml and config/gpu_check.yaml layered on it (about 30M-parameter models,
32 prompts) on this machine's GPU: the three samplers, reward scoring, every trainer for a few steps (pre-training,
SFT and the reward model, RRHF with Figure 3's reward curve, online RRHF with +KL, DPO and its reference
log-probabilities, under FSDP2 in one process; PPO and fine-grained PPO in bf16 autocast), and an evaluation. Each
job logs its peak (rrhf.io: "peak GPU memory of this process"); this script then prints, per rule, the largest
peak of its jobs beside the plan's estimate for that rule (rrhf.plan.memory_plan), and the ratio.

    python benchmarks/gpu_check.py [--workdir gpu-check] [--cores 8] [--real HH_FILE]

With ``--real HH_FILE`` (HH's harmless-base/test.jsonl.gz, and `make real-setup` done) it then runs
config/real.yaml, SmolLM2-135M-Instruct on real HH data (docs/real_model.md), on the same GPU in WORKDIR/real and
prints its time and each rule's largest peak (the real config asks for no GPU, so there is no plan to compare).

It needs a CUDA GPU and the project's environment with a CUDA build of torch; nothing else (no hub: the models
are built here). A ratio above 1 means the plan underestimates that rule: docs/cluster.md says what to do.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

CONFIGS = [REPO / "config" / "config.yaml", REPO / "config" / "gpu_check.yaml"]
TARGETS = [
    "results/scored/instruct/BP.parquet",  # beam
    "results/scored/instruct/SP.parquet",  # top-p
    "results/models/instruct/DP",  # diverse beam, scoring, RRHF with the reward curve (FSDP2)
    "results/models/instruct/OP-2+KL",  # online RRHF (FSDP2), a gathered copy, rho
    "results/models/instruct/DPO@DP",  # reference log-probabilities, DPO (FSDP2)
    "results/models/instruct/PPO",
    "results/models/instruct/FG-PPO",  # feedback, three segment reward models, fine-grained PPO
    "results/eval/instruct/DP/metrics.json",  # greedy decoding, KL to rho, reward and perplexity
]
PEAK = re.compile(r"peak GPU memory of this process: ([0-9.]+) GiB allocated, ([0-9.]+) GiB reserved")


def layered_config() -> dict:
    """config/config.yaml with config/gpu_check.yaml laid on it, as Snakemake layers --configfile files."""
    import yaml
    from snakemake.utils import update_config

    config = yaml.safe_load(CONFIGS[0].read_text())
    update_config(config, yaml.safe_load(CONFIGS[1].read_text()))
    return config


def log_rules(summary: str) -> dict[str, str]:
    """Log file -> the rule whose job wrote it, from Snakemake's ``--detailed-summary`` (tab-separated: output
    file, date, rule, log files, ...)."""
    lines = summary.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    columns = lines[header].split("\t")
    rules = {}
    for line in lines[header + 1:]:
        cells = dict(zip(columns, line.split("\t")))
        for log in cells.get("log-file(s)", "").split(","):
            if log and log != "-":
                rules[log] = cells["rule"]
    return rules


def measured_peaks(workdir: Path, rules: dict[str, str]) -> dict[str, float]:
    """Rule -> the largest peak (GiB allocated) its jobs logged, from their log files (``rules``: log -> rule)."""
    peaks: dict[str, float] = {}
    for log, rule in rules.items():
        path = workdir / log
        for match in PEAK.finditer(path.read_text(errors="replace") if path.is_file() else ""):
            peaks[rule] = max(peaks.get(rule, 0.0), float(match.group(1)))
    return peaks


def comparison(plan, peaks: dict[str, float]) -> tuple[str, list[str]]:
    """(table of each rule's plan and measured peak, rules whose peak exceeds their plan's allocated estimate)."""
    from rrhf.plan.memory import GIB
    from rrhf.plan.memory_plan import memory_plan

    rows = [("rule", "layout", "planned GiB", "measured GiB", "measured/planned")]
    over = []
    for estimate in memory_plan(plan):
        planned = estimate.allocated / GIB
        peak = peaks.get(estimate.rule)
        ratio = "" if peak is None else f"{peak / planned:.2f}"
        rows.append((estimate.rule, estimate.layout, f"{planned:.3f}", "not run" if peak is None else f"{peak:.3f}",
                     ratio))
        if peak is not None and peak > planned:
            over.append(estimate.rule)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))) for row in rows), over


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "gpu-check", help="where the run writes")
    parser.add_argument("--cores", type=int, default=8, help="jobs side by side on the one GPU")
    parser.add_argument("--real", metavar="HH_FILE", help="then run config/real.yaml on the GPU with this HH file")
    args = parser.parse_args()
    import torch

    from rrhf.config.schema import fill_defaults
    from rrhf.plan.plan import Plan
    from rrhf.studies.registry import STUDIES

    if not torch.cuda.is_available():
        print("make gpu-check needs a CUDA GPU: torch.cuda.is_available() is False here "
              f"(torch {torch.__version__}; a CUDA build of torch and a visible GPU are needed)", file=sys.stderr)
        return 2
    print(f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2 ** 30:.1f} "
          f"GiB; torch {torch.__version__}", flush=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(args.workdir),
                 "--configfile", *map(str, CONFIGS)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*snakemake, "--cores", str(args.cores), "--rerun-incomplete", *TARGETS], env=env,
                            check=False)
    print(f"workflow: exit {result.returncode} after {time.monotonic() - started:.0f} s ({args.workdir})")
    summary = subprocess.run([*snakemake, "--detailed-summary", *TARGETS], env=env, capture_output=True, text=True,
                             check=True).stdout
    plan = Plan(fill_defaults(layered_config()), REPO, STUDIES)
    table, over = comparison(plan, measured_peaks(args.workdir, log_rules(summary)))
    print(table)
    if over:
        print(f"the plan underestimates: {', '.join(over)} (docs/cluster.md, 'Memory planned before submission')")
    real = run_real(args.real, args.workdir / "real", args.cores, env) if args.real else 0
    return result.returncode or real or (1 if over else 0)


def run_real(hh_file: str, workdir: Path, cores: int, env: dict[str, str]) -> int:
    """config/real.yaml on this GPU in ``workdir`` (the HH file linked into it): its time and each rule's peak."""
    from rrhf.data.hh_file import place_hh_file

    place_hh_file(workdir / "data" / "hh-rlhf-harmless-base-test.jsonl.gz", hh_file)
    snakemake = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                 f"--configfile={REPO / 'config' / 'real.yaml'}"]
    targets = ["all", "results/findings.csv", "results/summary.md"]
    started = time.monotonic()
    result = subprocess.run([*snakemake, "--cores", str(cores), "--rerun-incomplete", *targets], env=env,
                            check=False)
    print(f"config/real.yaml: exit {result.returncode} after {time.monotonic() - started:.0f} s ({workdir})")
    summary = subprocess.run([*snakemake, "--detailed-summary", *targets], env=env, capture_output=True, text=True,
                             check=True).stdout
    for rule, peak in sorted(measured_peaks(workdir, log_rules(summary)).items()):
        print(f"  {rule:<28} {peak:6.2f} GiB")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
