"""results/summary.md: the run's results on one page, written by the run (never typed by hand): the machine
and versions, the replicates, each table (means ± 95 % intervals over replicates) and each claim's verdict."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from rrhf.io import atomic_path, setup_logging
from rrhf.report.pages import with_intervals

PACKAGES = ("torch", "transformers", "accelerate", "snakemake", "pandas")


def cpu_model() -> str:
    """The CPU's model name (as ``lscpu`` gives it: /proc/cpuinfo's "model name"), else platform's guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def versions() -> dict[str, str]:
    """Python's and the main packages' versions."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """A frame (read as text) as a Markdown table; empty cells as a dash, pipes escaped."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|") if str(value) != "" else "-"

    lines = ["| " + " | ".join(map(cell, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines


def write_summary(tables: dict[str, str], findings: str | None, about: dict[str, Any], output: str,
                  log_path: str | None = None) -> str:
    """Write results/summary.md from the tables' CSVs (``{title: path}``), results/findings.csv (or None) and
    ``about`` (replicates, reseeded stages, config files); returns the text."""
    lines = ["# Results of this run", "",
             "Written by the workflow (rule summary) from the files it names; nothing here is typed by hand.", "",
             "## Machine", "", f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores)",
             "- " + ", ".join(f"{name} {version}" for name, version in versions().items()),
             f"- config: {', '.join(about.get('configfiles') or ['config/config.yaml'])}",
             f"- replicates: {about['replicates']} (re-seeded stages: {', '.join(about['reseeded']) or 'none'})", ""]
    for title, path in tables.items():
        frame, intervals = with_intervals(pd.read_csv(path, dtype=str, keep_default_na=False))
        lines += [f"## {title}", "", f"From `{path}`" + (": means over replicates ± the half-width of their 95 % "
                                                         "t-interval." if intervals else "."), "",
                  *markdown_table(frame), ""]
    if findings:
        frame = pd.read_csv(findings, keep_default_na=False, na_values=[""])  # an id "null" stays text
        counts = frame["verdict"].value_counts()
        lines += ["## Findings", "", f"From `{findings}` (docs/findings.md): "
                  + ", ".join(f"{counts.get(v, 0)} {v}" for v in ("holds", "contradicted", "inconclusive"))
                  + f" of {len(frame)} claims, over {int(frame['replicates'].iloc[0])} replicate(s).", ""]
        shown = pd.DataFrame({
            "claim": frame["id"], "metric": frame["metric"], "row - versus": frame["row"] + " - " + frame["versus"],
            "claimed": [f"{direction} than {than:g}" if than else direction for direction, than in
                        zip(frame["direction"], frame["than"] if "than" in frame else [0] * len(frame))],
            "effect [95 % interval]": [f"{e:.4g} [{lo:.4g}, {hi:.4g}]" if pd.notna(lo) else f"{e:.4g} [no interval]"
                                       for e, lo, hi in zip(frame["effect"], frame["ci_low"], frame["ci_high"])],
            "verdict": frame["verdict"],
            "replicates to settle": [f"{int(n)}" if pd.notna(n) else "-" for n in frame["replicates_to_settle"]],
            "source": frame["source"]})
        lines += [*markdown_table(shown), ""]
    text = "\n".join(lines)
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    setup_logging(log_path).info("wrote %s (%d tables%s)", output, len(tables), ", findings" if findings else "")
    return text
