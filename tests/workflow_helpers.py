"""Running real Snakemake on the tiny config, made smaller still, in a scratch folder."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# Smaller than config/config.yaml so a whole chain runs in about a minute.
FAST_OVERRIDES = {
    "datasets": {"synthetic_hh": {"num_pairs": 500}, "synthetic_hh_unbiased": {"num_pairs": 500}},
    "data": {"train_prompts": 12, "test_prompts": 8},
    "models": {
        "tokenizer": {"build": {"vocab_size": 500}},
        "base": {"build": {"architecture": {"n_layer": 1, "n_embd": 48, "n_head": 2},
                           "training": {"epochs": 1, "batch_size": 32, "max_length": 128}}},
        "instruct": {"build": {"max_examples": 64, "training": {"batch_size": 16, "max_length": 128}}},
        "instruct_sft": {"build": {"max_examples": 64, "training": {"batch_size": 16, "max_length": 128}}},
        "reward": {"build": {"training": {"batch_size": 32, "max_length": 128},
                             "on_policy": {"prompts": 24, "max_new_tokens": 12}}},
        "reward_unbiased": {"build": {"training": {"batch_size": 32, "max_length": 128},
                                      "on_policy": {"prompts": 24, "max_new_tokens": 12}}},
        "evaluation_lm": {"build": {"architecture": {"n_layer": 1, "n_embd": 32, "n_head": 2},
                                    "training": {"epochs": 1, "batch_size": 32, "max_length": 128}}},
    },
    "sampling": {"batch_size": 12, "samplers": {name: {"max_new_tokens": 12}
                                                for name in ("beam", "diverse_beam", "top_p")}},
    "rrhf": {"training": {"epochs": 1, "batch_size": 4, "max_length": 128}},
    "evaluation": {"decoding": {"max_new_tokens": 12}},
    "overoptimisation": {"best_of": [1, 2, 4]},
    "human_evaluation": {"pairs": 4, "shared_pairs": 2, "annotators": 2, "table4_prompts": 2},
}


def jobs_by_rule(dry_run_output: str) -> dict[str, int]:
    """Rule -> job count from the "Job stats" table of a ``snakemake -n`` run."""
    counts: dict[str, int] = {}
    lines = dry_run_output.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        if parts[0] != "total":
            counts[parts[0]] = int(parts[1])
    return counts


def dry_run_jobs(dry_run_output: str) -> list[dict[str, str]]:
    """Every job of a ``snakemake -n`` listing, in order: its ``rule`` and each ``key: value`` line under it
    (input, output, wildcards, resources, threads, ...) as printed."""
    jobs: list[dict[str, str]] = []
    for line in dry_run_output.splitlines():
        if match := re.fullmatch(r"(?:local)?rule (\S+):", line.strip()):
            jobs.append({"rule": match.group(1)})
        elif jobs and (match := re.fullmatch(r"(\w+): (.*)", line.strip())):
            jobs[-1].setdefault(*match.groups())
    return jobs


def key_values(field: str) -> dict[str, str]:
    """A dry run's ``a=1, b=2`` (wildcards, resources) as {"a": "1", "b": "2"}; {} for an empty field."""
    return dict(item.split("=", 1) for item in field.split(", ")) if field else {}


def write_config(folder: Path, overrides: dict, name: str = "overrides.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(overrides))
    return path


def snakemake_command(workdir: Path, configs: list[Path], *args: str,
                      snakefile: Path = REPO / "Snakefile") -> list[str]:
    """The ``snakemake`` command line that runs ``snakefile`` (the repository's) in ``workdir`` with these config
    files (later ones win; none: the Snakefile's default)."""
    return [str(SNAKEMAKE), "-s", str(snakefile), "-d", str(workdir),
            *(["--configfile", *map(str, configs)] if configs else []), "--cores", "2", *args]


def snakemake_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def snakemake(workdir: Path, configs: list[Path], *args: str, timeout: int = 900,
              snakefile: Path = REPO / "Snakefile") -> subprocess.CompletedProcess:
    """Run :func:`snakemake_command` and wait for it."""
    return subprocess.run(snakemake_command(workdir, configs, *args, snakefile=snakefile), capture_output=True,
                          text=True, timeout=timeout, env=snakemake_env())


def run_snakemake(workdir: Path, *args: str, overrides: dict | None = None, check: bool = True,
                  timeout: int = 900) -> subprocess.CompletedProcess:
    """The tiny config plus ``overrides``; raises with Snakemake's output when ``check`` and it fails."""
    configs = [REPO / "config" / "config.yaml"]
    if overrides is not None:
        configs.append(write_config(workdir, overrides))
    result = snakemake(workdir, configs, *args, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


def chromium() -> str:
    """Debian's headless-capable ``chromium``: found on PATH, or installed with apt-get when running as root
    (CI); the calling test is skipped, saying why, when neither is possible."""
    import pytest

    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be (not root, or no apt-get): "
                    "apt-get install -y --no-install-recommends chromium")
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(install, capture_output=True, text=True, env=env)
    if result.returncode != 0:  # a clean machine has no package lists yet
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        result = subprocess.run(install, capture_output=True, text=True, env=env)
    found = shutil.which("chromium")
    if result.returncode != 0 or not found:
        pytest.skip(f"could not install chromium with apt-get:\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}")
    return found


def headless_chromium(browser: str, url: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    """Load ``url`` in headless Chromium with ``args`` (e.g. --dump-dom, --screenshot=PATH); JavaScript gets 5 s
    of virtual time to render."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--virtual-time-budget=5000", *args, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def copy_of(workdir: Path, tmp_path_factory, name: str) -> Path:
    """A copy of a built workflow folder (file times kept, so Snakemake finds it up to date) for a fixture or a
    test to build on: the shared session folder itself is never built on, so no test depends on which others run
    or in what order."""
    copy = tmp_path_factory.mktemp(name) / "workflow"
    shutil.copytree(workdir, copy, symlinks=True)
    return copy
