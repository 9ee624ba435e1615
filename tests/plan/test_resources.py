"""What each rule asks a cluster for, read from real dry runs: the paper config as the README types it
(`snakemake --profile slurm -n results/table6.csv`) and the tiny default under the same profile. (That tables
and gathers never become SLURM jobs is checked on a real cluster, tests/workflow/test_slurm.py.)"""

import os
import subprocess

import pytest
import yaml

from workflow_helpers import REPO, SNAKEMAKE, dry_run_jobs, key_values

HEAVY = {"sample_responses", "sample_iterated_responses", "score_samples", "score_iterated_samples",
         "score_provided", "train_sft", "train_rrhf", "train_online_rrhf", "train_ppo", "evaluate_policy"}


def planned_resources(*args: str) -> dict[str, list[dict[str, str]]]:
    """Rule -> the resources of each of its jobs in a forced dry run from the repository root, as typed."""
    command = [str(SNAKEMAKE), *args, "-n", "--forceall"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    for job in dry_run_jobs(result.stdout):
        jobs.setdefault(job["rule"], []).append(key_values(job.get("resources", "")))
    return jobs


def expected(config: dict, rule: str) -> dict[str, str]:
    section = config["resources"]
    own = section.get("rules", {}).get(rule, {})
    return {key: str(own.get(key, section.get(key))) for key in ("gpu", "cpus_per_task", "mem_mb", "runtime")}


@pytest.fixture(scope="module")
def paper_jobs():
    return planned_resources("--profile", "slurm", "results/table6.csv", "results/table2.csv")


def test_the_paper_config_asks_for_gpus_as_the_paper_used_them(paper_jobs):
    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert HEAVY <= set(paper_jobs)
    for rule in HEAVY:
        for job in paper_jobs[rule]:
            assert {key: job.get(key) for key in ("gpu", "cpus_per_task", "mem_mb", "runtime")} == \
                expected(paper, rule), rule
    assert {job["gpu"] for rule in ("train_rrhf", "train_sft") for job in paper_jobs[rule]} == {"8"}
    assert {job["gpu"] for rule in ("sample_responses", "score_samples", "evaluate_policy")
            for job in paper_jobs[rule]} == {"1"}
    # One job per shard: 16 shards of each (policy, sampler) the table's rows sample with.
    assert len(paper_jobs["score_provided"]) == paper["shards"]


def test_the_tiny_default_under_the_profile_asks_for_no_gpu():
    tiny = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    jobs = planned_resources("--profile", "slurm", "--configfile=config/config.yaml", "results/table6.csv",
                             "results/table2.csv")
    assert HEAVY - {"train_sft"} - {"sample_iterated_responses", "score_iterated_samples"} <= set(jobs)
    for rule, rule_jobs in jobs.items():
        for job in rule_jobs:
            assert job.get("gpu", "0") == "0", rule
            if rule in HEAVY | {"pretrain_lm", "train_reward_model"}:
                assert {key: job.get(key) for key in ("gpu", "cpus_per_task", "mem_mb", "runtime")} == \
                    expected(tiny, rule), rule
    assert {job["cpus_per_task"] for job in jobs["pretrain_lm"]} == {"2"}  # the tiny default's long builds
