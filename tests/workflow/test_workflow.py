"""Real Snakemake runs of the tiny config (made smaller) from nothing, in a scratch folder."""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rrhf.io import read_provenance
from rrhf.text import words
from workflow_helpers import (
    FAST_OVERRIDES,
    REPO,
    copy_of,
    jobs_by_rule,
    key_values,
    run_snakemake,
    snakemake,
    snakemake_command,
    snakemake_env,
    write_config,
)

pytestmark = pytest.mark.workflow
TRAIN_PROMPTS = FAST_OVERRIDES["data"]["train_prompts"]
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "source", "reward"]
TRAINING_ROWS_PER_PROMPT = {"DP": 6, "D": 4, "P": 2}


# The fixtures workdir and table_workdir (shared with tests/report/test_report.py) are in conftest.py.


def test_data_stage_writes_normalised_splits(workdir):
    train = pd.read_parquet(workdir / "resources/data/synthetic_hh/train.parquet")
    test = pd.read_parquet(workdir / "resources/data/synthetic_hh/test.parquet")
    assert list(train.columns) == ["prompt_id", "prompt", "chosen", "rejected"]
    assert train["prompt_id"].is_unique and test["prompt_id"].is_unique
    assert not set(train["prompt_id"]) & set(test["prompt_id"])
    assert len(train) + len(test) == FAST_OVERRIDES["datasets"]["synthetic_hh"]["num_pairs"]


def test_models_are_built_in_hf_format(workdir):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    for name in ("base", "instruct"):
        folder = workdir / "resources/models" / name
        assert (folder / "model.safetensors").exists()
        assert AutoModelForCausalLM.from_pretrained(folder).config.num_hidden_layers == 1
    reward = AutoModelForSequenceClassification.from_pretrained(workdir / "resources/models/reward")
    assert reward.config.num_labels == 1
    log = (workdir / "logs/train_reward_model/reward.log").read_text()
    assert "held-out pairwise accuracy" in log


def test_samples_have_one_row_per_prompt_and_response(workdir):
    samples = pd.read_parquet(workdir / "results/samples/instruct/diverse_beam.parquet")
    assert list(samples.columns) == ["prompt_id", "prompt", "response_index", "response", "source"]
    assert len(samples) == TRAIN_PROMPTS * 4
    assert all(sorted(group) == [0, 1, 2, 3] for _, group in samples.groupby("prompt_id")["response_index"])
    assert read_provenance(workdir / "results/samples/instruct/diverse_beam.parquet")["method"] == "diverse_beam"


@pytest.mark.parametrize("setting, sources", [
    ("DP", {"diverse_beam", "chosen", "rejected"}),
    ("D", {"diverse_beam"}),
    ("P", {"chosen", "rejected"}),
])
def test_scored_settings(workdir, setting, sources):
    per_prompt = TRAINING_ROWS_PER_PROMPT[setting]
    scored = pd.read_parquet(workdir / f"results/scored/instruct/{setting}.parquet")
    assert list(scored.columns) == SCORED_COLUMNS
    assert len(scored) == TRAIN_PROMPTS * per_prompt
    assert set(scored["source"]) == sources
    assert scored["reward"].notna().all() and scored["reward"].dtype == float
    assert (scored.groupby("prompt_id").size() == per_prompt).all()


def test_provided_rewards_are_shared_between_settings(workdir):
    dp = pd.read_parquet(workdir / "results/scored/instruct/DP.parquet")
    p = pd.read_parquet(workdir / "results/scored/instruct/P.parquet")
    provided = dp[dp["source"] != "diverse_beam"].set_index(["prompt_id", "source"])["reward"].sort_index()
    assert provided.equals(p.set_index(["prompt_id", "source"])["reward"].sort_index())


def test_second_run_has_nothing_to_do(workdir):
    result = run_snakemake(workdir, "-n", *(f"results/scored/instruct/{s}.parquet" for s in ("DP", "D", "P")),
                           overrides=FAST_OVERRIDES)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_table6_row_end_to_end(table_workdir):
    workdir, _ = table_workdir
    table = pd.read_csv(workdir / "results/table6.csv")
    assert list(table.columns) == ["policy", "setting", "ppl", "reward", "reward_sem", "gold_reward",
                                   "gold_reward_sem", "repetition", "train_reward_mean", "train_reward_std",
                                   "train_reward_max"]
    assert table[["policy", "setting"]].values.tolist() == [["tiny-instruct (Alpaca role)", "DP"]]
    numbers = table.drop(columns=["policy", "setting"])
    assert all(pd.api.types.is_numeric_dtype(dtype) for dtype in numbers.dtypes)  # 0 reads back as an integer
    assert numbers.map(lambda v: math.isfinite(v)).all().all()
    assert table["ppl"].iloc[0] > 1
    assert -1 <= table["gold_reward"].iloc[0] <= 1
    metrics = json.loads((workdir / "results/eval/instruct/DP/metrics.json").read_text())
    generations = pd.read_parquet(workdir / "results/eval/instruct/DP/generations.parquet")
    assert metrics["n"] == len(generations) == FAST_OVERRIDES["data"]["test_prompts"]
    sem = generations["reward"].std(ddof=1) / math.sqrt(len(generations))
    assert table["reward_sem"].iloc[0] == pytest.approx(sem, rel=1e-4, abs=1e-9)
    assert table["gold_reward"].iloc[0] == pytest.approx(generations["gold_reward"].mean(), rel=1e-4)
    assert 0 <= metrics["distinct_2"] <= 1
    assert metrics["response_words"] == pytest.approx(generations["response"].map(lambda r: len(words(r))).mean())
    assert table["train_reward_max"].iloc[0] >= table["train_reward_mean"].iloc[0]
    log = pd.read_parquet(workdir / "results/models/instruct/DP/train_log.parquet")
    assert {"step", "epoch", "loss", "rank_loss", "ft_loss", "lr"} <= set(log.columns)


def test_reward_model_is_judged_against_gold_on_the_training_sets(table_workdir):
    workdir, overrides = table_workdir
    run_snakemake(workdir, "results/eval/reward_model/metrics.json", overrides=overrides)
    metrics = json.loads((workdir / "results/eval/reward_model/metrics.json").read_text())
    agreement = metrics["training_sets"]["instruct/DP"]
    assert agreement["responses"] == TRAIN_PROMPTS * TRAINING_ROWS_PER_PROMPT["DP"]
    assert -1 <= agreement["spearman"] <= 1
    assert 0 <= metrics["held_out"]["test_gold_accuracy"] <= 1


def test_nothing_changed_means_nothing_to_do(table_workdir):
    workdir, overrides = table_workdir
    result = run_snakemake(workdir, "-n", "results/table6.csv", overrides=overrides)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changing_the_decoding_reruns_only_evaluation_and_tables(table_workdir):
    workdir, overrides = table_workdir
    changed = {**overrides, "evaluation": {"decoding": {"max_new_tokens": 10}}}
    result = run_snakemake(workdir, "-n", "results/table6.csv", overrides=changed)
    assert jobs_by_rule(result.stdout) == {"evaluate_policy": 1, "table6": 1}


def job_processes(script_name: str, workdir) -> list[int]:
    """PIDs of the processes running a Snakemake job's copy of ``script_name`` in ``workdir``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            folder = os.readlink(entry / "cwd")
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and script_name in command and folder == str(workdir):
            found.append(int(entry.name))
    return found


def test_train_rrhf_killed_by_sigkill_resumes_when_the_same_command_runs_again(table_workdir, tmp_path):
    """kill -9 of a train_rrhf job after its first checkpoint; the same command then resumes from that step
    (the rule's log says so) and writes the model, log and metrics the uninterrupted fixture run wrote."""
    workdir, overrides = table_workdir
    model = workdir / "results/models/instruct/DP"
    shutil.copytree(model, tmp_path / "uninterrupted")
    command = ["--forcerun=train_rrhf", "results/models/instruct/DP"]
    configs = [REPO / "config/config.yaml", write_config(tmp_path, {**overrides, "checkpoints": {"every_steps": 1}})]
    running = subprocess.Popen(snakemake_command(workdir, configs, *command), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=snakemake_env())
    first = workdir / "checkpoints/results/models/instruct/DP/step-00000001"
    deadline = time.monotonic() + 300
    while not first.exists() and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = job_processes("train_rrhf.py", workdir)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    output = running.communicate(timeout=300)[0]
    assert killed and running.returncode != 0, output[-3000:]
    assert not model.exists()  # Snakemake removed the failed job's output; the checkpoint stays
    resumed = snakemake(workdir, configs, *command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = (workdir / "logs/train_rrhf/instruct_DP.log").read_text()
    assert re.search(r"resuming from checkpoint \S+step-0000000[12]: step [12]", log), log
    for name in ("train_log.parquet", "metrics.json", "model.safetensors"):
        assert (model / name).read_bytes() == (tmp_path / "uninterrupted" / name).read_bytes(), name
    assert not (workdir / "checkpoints/results/models/instruct/DP").exists()


def test_sharded_sampling_and_scoring_equal_unsharded_and_a_lost_shard_reruns_alone(workdir, tmp_path):
    # Reuse the built data and models; sample (beam and top-p) and score without shards and in 2 shards, with
    # generation batches of 4 prompts (3 batches: shard 0 runs batches 0 and 2, shard 1 batch 1).
    sampling = {**FAST_OVERRIDES["sampling"], "batch_size": 4}
    scored = ["results/scored/instruct/DP.parquet", "results/rewards/instruct/top_p.parquet"]
    targets = [*scored, *(f"results/samples/instruct/{sampler}.parquet" for sampler in ("diverse_beam", "top_p"))]
    runs = {}
    for shards in (1, 2):
        folder = tmp_path / f"shards{shards}"
        shutil.copytree(workdir / "resources", folder / "resources", copy_function=shutil.copy2)
        overrides = {**FAST_OVERRIDES, "sampling": sampling, "shards": shards}
        if shards == 2:
            planned = jobs_by_rule(run_snakemake(folder, "-n", *targets, overrides=overrides).stdout)
            assert planned == {"sample_responses": 4, "score_samples": 4, "score_provided": 2, "gather_shards": 5,
                               "assemble_training_set": 1}
        run_snakemake(folder, *targets, overrides=overrides)
        runs[shards] = folder
    one, two = runs[1], runs[2]
    for sampler in ("diverse_beam", "top_p"):
        shard_ids = [set(pd.read_parquet(two / f"results/samples/instruct/{sampler}/shard{i}.parquet")["prompt_id"])
                     for i in (0, 1)]
        assert shard_ids[0] and shard_ids[1] and not shard_ids[0] & shard_ids[1]
        # The same text, row for row: shards run whole batches of the unsharded run with the same seeds.
        pd.testing.assert_frame_equal(pd.read_parquet(two / f"results/samples/instruct/{sampler}.parquet"),
                                      pd.read_parquet(one / f"results/samples/instruct/{sampler}.parquet"))
    for path in scored:
        sharded, unsharded = pd.read_parquet(two / path), pd.read_parquet(one / path)
        assert list(sharded.columns) == list(unsharded.columns)
        pd.testing.assert_frame_equal(sharded.drop(columns="reward"), unsharded.drop(columns="reward"))
        # Rewards: the same sequences scored in differently padded batches, equal to float32 rounding.
        assert (sharded["reward"] - unsharded["reward"]).abs().max() < 1e-5
    assert len(pd.read_parquet(two / targets[0])) == TRAINING_ROWS_PER_PROMPT["DP"] * TRAIN_PROMPTS

    # A failed shard re-runs alone. The state a failure of top-p sampling's shard 1 leaves (under --keep-going):
    # no shard 1, nothing gathered or scored from it; shard 0 and its scores are kept and not run again.
    for stage in ("samples", "rewards"):
        (two / f"results/{stage}/instruct/top_p/shard1.parquet").unlink()
        (two / f"results/{stage}/instruct/top_p.parquet").unlink()
    redo = planned_jobs(run_snakemake(two, "-n", *targets, overrides={**FAST_OVERRIDES, "sampling": sampling,
                                                                           "shards": 2}).stdout)
    shard = {"policy": "instruct", "sampler": "top_p", "shard": "1"}
    assert sorted(((rule, key_values(wildcards)) for rule, wildcards, _ in redo
                   if rule in ("sample_responses", "score_samples")), key=lambda job: job[0]) \
        == [("sample_responses", shard), ("score_samples", shard)]


TINY_PPO = {"training": {"learning_rate": 1e-4, "batch_size": 4, "max_length": 128, "seed": 1,
                         "lr_schedule": "constant", "warmup_ratio": 0.0},
            "total_steps": 8, "num_rollouts": 8, "chunk_size": 8, "ppo_epochs": 1,  # 4 iterations of 2 steps
            "generation": {"max_new_tokens": 12, "temperature": 0.5}}


@pytest.fixture(scope="module")
def baseline_workdir(table_workdir, tmp_path_factory):
    """A copy of table_workdir's folder (its models and DP's row already built), with Table 2 reduced to one row
    of each new kind and Table 5 to two, built end to end."""
    workdir = copy_of(table_workdir[0], tmp_path_factory, "baseline")
    tables = workdir / "baseline_tables.yaml"
    tables.write_text(yaml.safe_dump({
        "table2": [{"responses": "chosen"}, {"policy": "Alpaca", "setting": "best-of-2"},
                   {"policy": "Alpaca", "setting": "PPO"}],
        "table5": [{"reward_model": True}, {"policy": "Alpaca", "setting": "PPO"}]}))
    overrides = {**FAST_OVERRIDES, "tables": str(tables), "findings": None, "ppo": TINY_PPO,
                 "evaluation": {**FAST_OVERRIDES["evaluation"], "best_of_n": {"max_new_tokens": 12, "batch_size": 8}}}
    planned = jobs_by_rule(run_snakemake(workdir, "-n", "results/table2.csv", "results/table5.csv",
                                         overrides=overrides).stdout)
    run_snakemake(workdir, "results/table2.csv", "results/table5.csv", overrides=overrides)
    return workdir, overrides, planned


def test_table2_rows_of_each_new_kind(baseline_workdir):
    workdir, _, planned = baseline_workdir
    assert {key: planned[key] for key in ("train_ppo", "evaluate_best_of_n", "evaluate_policy",
                                          "evaluate_provided")} == {
        "train_ppo": 1, "evaluate_best_of_n": 1, "evaluate_policy": 1, "evaluate_provided": 1}
    table = pd.read_csv(workdir / "results/table2.csv", keep_default_na=False)
    assert list(table.columns) == ["policy", "setting", "ppl", "reward", "reward_sem", "gold_reward",
                                   "gold_reward_sem", "repetition"]
    assert table[["policy", "setting"]].values.tolist() == [
        ["dataset", "good responses"], ["tiny-instruct (Alpaca role)", "best-of-2"],
        ["tiny-instruct (Alpaca role)", "PPO"]]
    assert table["ppl"].tolist()[1] == ""  # best-of-n reports no perplexity
    assert float(table["ppl"].iloc[0]) > 1 and float(table["ppl"].iloc[2]) > 1
    best = pd.read_parquet(workdir / "results/eval/instruct/best-of-2/samples.parquet")
    assert best.groupby("prompt_id").size().eq(2).all()
    assert float(table["reward"].iloc[1]) == pytest.approx(best.groupby("prompt_id")["reward"].max().mean(), rel=1e-5)


def test_ppo_run_in_the_workflow(baseline_workdir):
    workdir, _, _ = baseline_workdir
    model = workdir / "results/models/instruct/PPO"
    log = pd.read_parquet(model / "train_log.parquet")
    assert len(log) == 4 and log["kl"].map(math.isfinite).all() and log["gold_reward"].notna().all()
    assert (model / "value_head.safetensors").exists() and (model / "model.safetensors").exists()
    assert (workdir / "logs/train_ppo/instruct_PPO.log").read_text().count("PPO iteration") == 4
    assert read_provenance(model / "train_log.parquet")["stage"] == "train_ppo"


def test_table5_reward_model_and_policy_rows(baseline_workdir):
    workdir, _, _ = baseline_workdir
    table = pd.read_csv(workdir / "results/table5.csv")
    assert table[["policy", "setting"]].values.tolist() == [["tiny-reward (gptj-rm-static role)", "reward model"],
                                                           ["tiny-instruct (Alpaca role)", "PPO"]]
    test_pairs = len(pd.read_parquet(workdir / "resources/data/synthetic_hh/test.parquet"))
    assert table["pairs"].tolist() == [test_pairs, test_pairs]
    assert table["accuracy"].between(0, 1).all()


def planned_jobs(dry_run_output: str) -> list[tuple[str, str, str]]:
    """(rule, wildcards, input) of every job in a ``snakemake -n`` listing (empty strings where none; replicate
    0's empty ``replicate`` wildcard left out)."""
    jobs = []
    for block in dry_run_output.split("\nrule ")[1:]:
        lines = block.splitlines()
        fields = {line.strip().split(":")[0]: line.split(":", 1)[1].strip() for line in lines[1:] if ":" in line}
        wildcards = re.sub(r"^replicate=(, )?", "", fields.get("wildcards", ""))  # replicate 0: an empty folder
        jobs.append((lines[0].rstrip(":"), wildcards, fields.get("input", "")))
    return jobs


ONLINE_TABLES = {"table6": [{"policy": "Alpaca", "setting": "DP"}, {"policy": "Alpaca", "setting": "IP-2"},
                            {"policy": "Alpaca", "setting": "OP-32+KL"}]}


@pytest.fixture(scope="module")
def online_workdir(table_workdir, tmp_path_factory):
    """A copy of table_workdir's folder (its evaluation LM already built), with Table 6 reduced to DP, IP-2 and an
    online row (the paper's OP-32+KL, run as OP-1+KL: the shrunken run has 3 optimisation steps), built end to end.
    RRHF's learning rate is raised so that 3 steps change the shrunken policy's beam search."""
    workdir = copy_of(table_workdir[0], tmp_path_factory, "online")
    tables = workdir / "online_tables.yaml"
    tables.write_text(yaml.safe_dump(ONLINE_TABLES))
    overrides = {**FAST_OVERRIDES, "tables": str(tables), "findings": None,
                 "table_settings": {"OP-32+KL": "OP-1+KL"}, "resampling": {"kl_coef": 0.5},
                 "rrhf": {"training": {**FAST_OVERRIDES["rrhf"]["training"], "learning_rate": 3e-3}}}
    chain = run_snakemake(workdir, "-n", "--forceall", "results/eval/instruct/IP-3/metrics.json",
                          overrides=overrides).stdout
    run_snakemake(workdir, "results/table6.csv", overrides=overrides)
    return workdir, overrides, chain


def test_dry_run_of_ip3_lists_exactly_its_chain(online_workdir):
    _, _, chain = online_workdir
    jobs = planned_jobs(chain)
    iterated = {rule: sorted(w for r, w, _ in jobs if r == rule) for rule in
                ("train_rrhf", "assemble_training_set", "sample_iterated_responses", "sample_responses")}
    assert iterated["train_rrhf"] == [f"policy=instruct, setting={s}" for s in ("DP", "IP-2", "IP-3")]
    assert iterated["assemble_training_set"] == [f"policy=instruct, setting={s}" for s in ("DP", "IP-2", "IP-3")]
    assert iterated["sample_iterated_responses"] == [
        f"policy=instruct, iteration={i}, sampler=diverse_beam" for i in ("IP-2", "IP-3")]
    assert iterated["sample_responses"] == ["policy=instruct, sampler=diverse_beam"]
    samplers = {w: i for r, w, i in jobs if r == "sample_iterated_responses"}
    assert "results/models/instruct/DP" in samplers["policy=instruct, iteration=IP-2, sampler=diverse_beam"]
    assert "results/models/instruct/IP-2" in samplers["policy=instruct, iteration=IP-3, sampler=diverse_beam"]
    # Nothing else: the data, the models the chain needs (the reward model's on-policy pairs need every initial
    # policy, instruct_sft too), and one evaluation.
    assert jobs_by_rule(chain) == {
        "prepare_dataset": 2, "build_tokenizer": 1, "pretrain_lm": 2, "train_sft": 2, "collect_preferences": 1,
        "train_reward_model": 1,
        "sample_responses": 1, "score_samples": 1, "score_provided": 1, "assemble_training_set": 3,
        "train_rrhf": 3, "sample_iterated_responses": 2, "score_iterated_samples": 2, "evaluate_policy": 1}


def test_ip2_samples_from_ip1s_model(online_workdir):
    workdir, _, _ = online_workdir
    first = pd.read_parquet(workdir / "results/samples/instruct/diverse_beam.parquet")
    second = pd.read_parquet(workdir / "results/samples/instruct/IP-2/diverse_beam.parquet")
    assert read_provenance(workdir / "results/samples/instruct/IP-2/diverse_beam.parquet")["policy"] == \
        "results/models/instruct/DP"
    keys = ["prompt_id", "response_index"]
    assert first[keys].equals(second[keys])  # the same prompts and slots...
    assert (first["response"] != second["response"]).any()  # ...answered by another model
    scored = pd.read_parquet(workdir / "results/scored/instruct/IP-2.parquet")
    assert scored.groupby("prompt_id").size().eq(TRAINING_ROWS_PER_PROMPT["DP"]).all()
    assert read_provenance(workdir / "results/models/instruct/IP-2/train_log.parquet")["policy"] == \
        "results/models/instruct/DP"


def test_online_row_samples_during_training(online_workdir):
    workdir, overrides, _ = online_workdir
    model = workdir / "results/models/instruct/OP-1+KL"
    metrics = json.loads((model / "metrics.json").read_text())
    steps = math.ceil(TRAIN_PROMPTS / overrides["rrhf"]["training"]["batch_size"])
    assert metrics["steps"] == metrics["rounds"] == steps  # k = 1: a round before every step
    samples = pd.read_parquet(model / "online_samples.parquet")
    assert sorted(samples["step"].unique()) == list(range(steps))
    assert samples.groupby("step")["prompt_id"].nunique().sum() == TRAIN_PROMPTS  # each query once per epoch
    assert samples["training_reward"].to_numpy() == pytest.approx(
        (samples["reward"] - overrides["resampling"]["kl_coef"] * samples["kl"]).to_numpy())
    assert (samples.loc[samples["step"] == 0, "kl"].abs() < 1e-5).all() and (samples["kl"] > 0).any()
    log = (workdir / "logs/train_online_rrhf/instruct_OP-1+KL.log").read_text()
    assert re.findall(r"sampling round (\d+) at step (\d+)", log) == [(str(s), str(s)) for s in range(steps)]


def test_table6_with_iterated_and_online_rows(online_workdir):
    workdir, _, _ = online_workdir
    table = pd.read_csv(workdir / "results/table6.csv", keep_default_na=False)
    assert table["setting"].tolist() == ["DP", "IP-2", "OP-1+KL"]  # the online row says which k ran
    assert table.iloc[2]["train_reward_mean"] == "" and table.iloc[1]["train_reward_mean"] != ""
    assert float(table.iloc[1]["train_reward_mean"]) == pytest.approx(
        pd.read_parquet(workdir / "results/scored/instruct/IP-2.parquet")["reward"].mean(), rel=1e-5)
    assert table["ppl"].map(float).gt(1).all()
