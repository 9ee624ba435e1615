"""The workflow on a real SLURM cluster, the way a user runs it (`make test-slurm`, as root, minutes).

A one-node cluster on loopback (tests/slurm/start_cluster.sh: munged, MariaDB, slurmdbd, slurmctld, slurmd) runs
`snakemake --profile slurm ... results/table6.csv` from the repository root on a smaller tiny config with two
Table 6 rows. The test checks the table, and that SLURM's accounting (sacct) lists every rule run as a completed
job with the CPUs, memory and time limit that the rule asked for. Only `RRHF_TEST_SLURM=1` runs it, so plain
`make test` skips it.
"""

import csv
import os
import re
import shutil
import subprocess
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml

from workflow_helpers import FAST_OVERRIDES, REPO, dry_run_jobs, key_values

SLURM_SCRIPTS = REPO / "tests" / "slurm"
ROWS = [{"policy": "Alpaca", "setting": "DP"}, {"policy": "Alpaca", "setting": "P"}]
DEF_MEM_PER_CPU = 1000  # slurm.conf.in: the memory of a job that asks for none
SACCT_FIELDS = "JobID,JobName,Comment,State,ExitCode,AllocCPUS,ReqMem,Timelimit,Start,Elapsed,NodeList"


def skip_reason() -> str | None:
    if os.environ.get("RRHF_TEST_SLURM") != "1":
        return "starts a SLURM cluster: runs only with RRHF_TEST_SLURM=1 (make test-slurm)"
    if os.geteuid() != 0:
        installed = "installed" if shutil.which("slurmctld") else "not installed"
        return (f"needs root: starts munged, MariaDB and the SLURM daemons as their own users, and installs "
                f"slurm-wlm when missing (SLURM is {installed} here)")
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.skipif(skip_reason() is not None, reason=skip_reason() or "")]


def deep_merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, dict by dict (as Snakemake merges several config files)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def exited(pid: int) -> bool:
    """Whether a process has exited: gone, or a zombie its (adoptive) parent has not reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.fixture(scope="session")
def slurm_env():
    """A running cluster: the environment that reaches it (SLURM_CONF, and PATH for srun). Afterwards its
    daemons are stopped by the PIDs the start script recorded, and the fixture checks that they exited."""
    # Not pytest's tmp_path: munged wants every folder above its socket searchable by all, and
    # /tmp/pytest-of-root is private.
    state = Path(tempfile.mkdtemp(prefix="rrhf-slurm-"))
    # SLURM_CONF for every SLURM command; bin/ holds an srun that keeps it inside jobs (see start_cluster.sh).
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "PATH": f"{state / 'bin'}:{os.environ['PATH']}"}
    try:
        start = subprocess.run([str(SLURM_SCRIPTS / "start_cluster.sh"), str(state)], capture_output=True,
                               text=True, timeout=900)  # a cold start installs the packages first
        assert start.returncode == 0, f"start_cluster.sh failed:\n{start.stdout}\n{start.stderr}"
        yield env
    finally:
        pids = {path.stem: int(path.read_text()) for path in sorted((state / "pids").glob("*.pid"))}
        subprocess.run([str(SLURM_SCRIPTS / "stop_cluster.sh"), str(state)], timeout=300)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(map(exited, pids.values())):
            time.sleep(0.2)
        shutil.rmtree(state, ignore_errors=True)
        running = {name: pid for name, pid in pids.items() if not exited(pid)}
        assert not running, f"daemons still running after stop_cluster.sh: {running}"


def planned_jobs(dry_run: str) -> dict[str, dict]:
    """The jobs of a ``snakemake -n`` output, keyed by the sbatch --comment the SLURM plugin gives them
    (rule_<rule>, or rule_<rule>_wildcards_<values joined by _>), with their threads and resources."""
    planned = {}
    for job in dry_run_jobs(dry_run):
        values = "_".join(key_values(job.get("wildcards", "")).values()).replace("/", "_")
        planned[f"rule_{job['rule']}" + (f"_wildcards_{values}" if values else "")] = {
            "rule": job["rule"], "threads": int(job.get("threads", 1)),
            "resources": key_values(job.get("resources", ""))}
    return planned


def expected_allocation(job: dict) -> dict[str, str]:
    """What sacct should show for a planned job: the plugin asks for --cpus-per-task (cpus_per_task, else the
    threads; Snakemake 9's dry run shows cpus_per_task only), --mem (mem_mb, else the cluster's DefMemPerCPU
    applies) and -t (runtime in minutes, else the partition's limit: none)."""
    resources = job["resources"]
    cpus = int(resources.get("cpus_per_task", job["threads"]))
    mem_mb = int(resources.get("mem_mb", DEF_MEM_PER_CPU * cpus))
    runtime = int(resources["runtime"]) if "runtime" in resources else None
    return {"AllocCPUS": str(cpus), "ReqMem": f"{mem_mb}M",
            "Timelimit": f"{runtime // 60:02d}:{runtime % 60:02d}:00" if runtime else "UNLIMITED"}


def test_table6_through_the_slurm_profile(slurm_env, tmp_path, capsys):
    config = deep_merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), FAST_OVERRIDES)
    tables = tmp_path / "tables.yaml"
    tables.write_text(yaml.safe_dump({"table6": ROWS}))
    config["tables"] = str(tables)
    config["findings"] = None  # the claims are about the full tables
    # One file: `--configfile=FILE` (the form that replaces the profile's config/paper.yaml) takes exactly one.
    merged = tmp_path / "config.yaml"
    merged.write_text(yaml.safe_dump(config))
    workdir = tmp_path / "work"
    env = {**slurm_env, "HF_HUB_OFFLINE": "1"}
    # The user's command, run from the repository root where `slurm` links to profiles/slurm. The flags after
    # the target only speed a tiny run up (first status check after 5 s, not 40; files seen at once).
    command = [".venv/bin/snakemake", "--profile", "slurm", f"--configfile={merged}", "--directory", str(workdir),
               "results/table6.csv"]
    local = ["--jobs", "4", "--latency-wait", "5", "--slurm-init-seconds-before-status-checks", "5",
             "--slurm-status-command", "sacct"]

    dry_run = subprocess.run([*command, *local, "--dry-run"], cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
    assert dry_run.returncode == 0, dry_run.stdout[-4000:] + dry_run.stderr[-4000:]
    planned = planned_jobs(dry_run.stdout)
    assert planned, dry_run.stdout[-4000:]

    started = datetime.now() - timedelta(minutes=1)
    # timeout -s INT: snakemake waiting on SLURM may ignore SIGTERM; SIGINT makes it cancel its jobs and stop
    # (and SIGKILL a minute later if it did not).
    run = subprocess.run(["timeout", "-s", "INT", "-k", "60", "900", *command, *local], cwd=REPO, env=env,
                         capture_output=True, text=True)
    since = ["--starttime", started.strftime("%Y-%m-%dT%H:%M:%S"), "--allusers", "--allocations"]
    listing = subprocess.run(["sacct", *since, f"--format={SACCT_FIELDS.replace('Comment', 'Comment%70')}"],
                             env=env, capture_output=True, text=True).stdout
    (tmp_path / "sacct.txt").write_text(listing)
    with capsys.disabled():
        print(f"\nSLURM jobs of `{' '.join(command)}` (sacct):\n{listing}")
    logs = "\n".join(f"--- {path}\n{path.read_text()[-2000:]}"
                     for path in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log")))
    assert run.returncode == 0, f"snakemake failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}\n{logs[-8000:]}"

    # The table, with the rows asked for.
    with open(workdir / "results" / "table6.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    display_name = config["models"][config["policies"]["Alpaca"]]["display_name"]
    assert [(row["policy"], row["setting"]) for row in table] == [(display_name, row["setting"]) for row in ROWS]

    # SLURM ran one completed job per planned rule run but the local ones (the table; a dry run does not mark
    # them, the run does), each with the resources its rule asked for.
    local_rules = set(re.findall(r"^localrule (\w+):", run.stdout + run.stderr, re.MULTILINE))
    assert local_rules == {"table6"}, local_rules
    planned = {comment: job for comment, job in planned.items() if job["rule"] not in local_rules}
    sacct = subprocess.run(["sacct", *since, "--parsable2", "--noheader", f"--format={SACCT_FIELDS}"], env=env,
                           capture_output=True, text=True, check=True).stdout
    jobs = [dict(zip(SACCT_FIELDS.split(","), line.split("|"))) for line in sacct.splitlines()]
    assert sorted(job["Comment"] for job in jobs) == sorted(planned), listing
    assert len({job["JobName"] for job in jobs}) == 1, "one run: every job is named by the same run id"
    for job in jobs:
        assert (job["State"], job["ExitCode"]) == ("COMPLETED", "0:0"), job
        wanted = expected_allocation(planned[job["Comment"]])
        assert {key: job[key] for key in wanted} == wanted, job["Comment"]
