"""A bad config stops Snakemake before any job starts, and the message names the key."""

import copy

import pytest
import yaml

from workflow_helpers import REPO, dry_run_jobs, key_values, snakemake, write_config

pytestmark = pytest.mark.workflow  # real Snakemake dry runs of broken configs

TINY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
NONE_ROW_TABLES = REPO / "tests" / "fixtures" / "tables_with_untrained_row.yaml"
BAD_TABLE2_ROWS = REPO / "tests" / "fixtures" / "tables_with_bad_table2_rows.yaml"
NOT_ROWS_TABLES = REPO / "tests" / "fixtures" / "tables_that_are_not_rows.yaml"
MISSING_ROW_FINDINGS = REPO / "tests" / "fixtures" / "findings_with_missing_row.yaml"


def dry_run_with(tmp_path, config):
    """A dry run of ``config`` as a complete config (the tiny default is not read under it)."""
    complete = {**config, "replaces_default_config": True}
    return snakemake(tmp_path, [write_config(tmp_path, complete, "config.yaml")], "-n", timeout=120)


def broken(edit):
    config = copy.deepcopy(TINY)
    edit(config)
    return config


CASES = {
    "typo in a top-level key": (lambda c: c.update(polices=c.pop("policies")), "polices"),
    "typo in a nested key": (lambda c: c["sampling"]["samplers"]["beam"].update(num_beam=4), "num_beam"),
    "unknown policy": (lambda c: c["policies"].update(Vicuna="llama_typo"), "policies.Vicuna"),
    "unknown training set": (lambda c: c["settings"].update(X={"training_set": "BQ"}), "settings.X.training_set"),
    "unknown sampler in a setting": (lambda c: c["settings"]["DP"].update(sampler="diverse"), "diverse"),
    "unknown sampler method": (lambda c: c["sampling"]["samplers"].update(nucleus={}), "nucleus"),
    "unknown model in a build": (lambda c: c["models"]["instruct"]["build"].update(init="bse"),
                                 "models.instruct.build.init"),
    "unknown reward model": (lambda c: c.update(reward_model="rm"), "reward_model"),
    "wrong type": (lambda c: c["data"].update(train_prompts="many"), "many"),
    "untrained row in table 6": (lambda c: c.update(tables=str(NONE_ROW_TABLES)), "table6 row 1 setting"),
    "best-of-0 in table 2": (lambda c: c.update(tables=str(BAD_TABLE2_ROWS)), "table2 row 1 setting: 'best-of-0'"),
    "unknown dataset row in table 2": (lambda c: c.update(tables=str(BAD_TABLE2_ROWS)),
                                       "table2 row 2: a responses row"),
    "best-of-n in table 5": (lambda c: c.update(tables=str(BAD_TABLE2_ROWS)), "table5 row 1 setting: 'best-of-4'"),
    "a setting named PPO": (lambda c: c["settings"].update(PPO={"sampler": "beam", "provided": True}), "PPO"),
    "unknown KL controller": (lambda c: c.update(ppo={"kl": {"controller": "proportional"}}), "proportional"),
    "PPO prompt with no room": (lambda c: c["ppo"]["generation"].update(max_new_tokens=400),
                                "ppo.training.max_length must exceed ppo.generation.max_new_tokens"),
    "PPO on several GPUs": (lambda c: c["resources"]["rules"].update(train_ppo={"gpu": 2}),
                            "resources.rules.train_ppo.gpu"),
    "fine-grained PPO on several GPUs": (lambda c: c["resources"]["rules"].update(train_fine_grained_ppo={"gpu": 4}),
                                        "resources.rules.train_fine_grained_ppo.gpu"),
    "resampling a setting with no sampler": (lambda c: c["resampling"].update(setting="P"), "resampling.setting"),
    "a table setting renamed to nothing": (lambda c: c["table_settings"].update({"OP-32": "OQ-2"}),
                                           "table_settings.OP-32: 'OQ-2'"),
    "LoRA on a pre-training build": (lambda c: c["models"]["base"]["build"]["training"].update(lora={"r": 4}),
                                     "models.base.build.training.lora: a pretrain build"),
    "LoRA under FSDP": (lambda c: c.update(accelerate_config="envs/accelerate/fsdp_full_shard.yaml",
                                           rrhf={"training": {"lora": {"r": 4}}},
                                           resources={"rules": {"train_rrhf": {"gpu": 8}}}),
                        "rrhf.training.lora: LoRA with FSDP"),
    "a value-head reward model without its backbone": (
        lambda c: c["models"].update(reward={"display_name": "rm", "path": "x/hf_ckpt.pt",
                                             "format": "value_head_checkpoint"}), "needs `path` (the checkpoint) and"),
    "a setting named like an iteration": (lambda c: c["settings"].update({"IP-4": {"sampler": "beam",
                                                                                  "provided": True}}), "IP-4"),
    "a claim naming a row no table has": (lambda c: c.update(findings=str(MISSING_ROW_FINDINGS)),
                                          "findings: findings_with_missing_row.yaml: claim 'sp-from-llama': row "
                                          "{'policy': 'LLaMA', 'setting': 'SP'} is no row of table2, table6, table7"),
    "no replicates": (lambda c: c.update(replicates=0), "replicates"),
    "a stage that is not re-seedable": (lambda c: c.update(reseeded_stages=["models", "evaluation"]), "evaluation"),
    # Values the schema lets through but that mean nothing (rrhf.plan.checks, one unit test each in test_plan.py):
    # all of them at once in test_every_check_of_the_plan_fires_before_any_job; this one is the Snakefile's own.
    "resources for a rule that does not exist": (lambda c: c["resources"]["rules"].update(train_rhf={"gpu": 1}),
                                                 "resources.rules.train_rhf: no rule takes resources under the name"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_stops_before_any_job(tmp_path, case):
    edit, expected = CASES[case]
    result = dry_run_with(tmp_path, broken(edit))
    assert result.returncode != 0
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_default_config_dry_run_is_clean(tmp_path):
    result = dry_run_with(tmp_path, TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sample_responses" in result.stdout


def test_paper_config_replaces_the_tiny_one(tmp_path):
    # --configfile config/paper.yaml must not inherit the tiny default's locally built models.
    paper = snakemake(tmp_path, [REPO / "config" / "paper.yaml"], "-n", "--quiet", "rules", timeout=120)
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert "pretrain_lm" not in paper.stdout and "build_tokenizer" not in paper.stdout
    assert "train_sft" in paper.stdout  # Alpaca-sft is built from Alpaca


def test_a_small_config_file_overlays_the_tiny_default(tmp_path):
    # One key changed, as Snakemake users write it: everything else is the tiny default's, not the schema's.
    small = write_config(tmp_path, {"resources": {"rules": {"sample_responses": {"cpus_per_task": 2}}}}, "small.yaml")
    result = snakemake(tmp_path, [small], "-n", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "extended by additional config" in result.stdout + result.stderr
    threads = threads_by_rule(result.stdout)
    assert threads["sample_responses"] == 2 and threads["train_rrhf"] == 1
    assert "pretrain_lm" in threads and "build_tokenizer" in threads  # the tiny default's locally built models


def test_a_model_of_another_kind_laid_over_the_default_is_named(tmp_path):
    small = write_config(tmp_path, {"models": {"reward": {"display_name": "rm", "path": "x/rm"}}}, "small.yaml")
    result = snakemake(tmp_path, [small], "-n", timeout=120)
    assert result.returncode != 0
    assert "models.reward: your config file gives `path`, and config/config.yaml's entry of that name has `build`" in \
        result.stdout + result.stderr
    assert not (tmp_path / "results").exists()


def test_a_small_file_after_the_paper_config_overlays_it(tmp_path):
    small = write_config(tmp_path, {"resources": {"rules": {"sample_responses": {"gpu": 2}}}}, "small.yaml")
    result = snakemake(tmp_path, [REPO / "config" / "paper.yaml", small], "-n", "results/table6.csv", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = [job for job in dry_run_jobs(result.stdout) if job["rule"] == "sample_responses"]
    assert jobs and all(key_values(job["resources"])["gpu"] == "2" for job in jobs)
    assert not any(job["rule"] == "pretrain_lm" for job in dry_run_jobs(result.stdout))


def threads_by_rule(dry_run_output: str) -> dict[str, int]:
    """Rule -> the threads its jobs get in a ``snakemake -n`` listing (1 where none is printed)."""
    return {job["rule"]: int(job.get("threads", 1)) for job in dry_run_jobs(dry_run_output)}


def test_threads_are_the_cpus_per_task_of_the_resources_section(tmp_path):
    config = broken(lambda c: c["resources"].update(cpus_per_task=1, rules={"sample_responses": {"cpus_per_task": 2}}))
    threads = threads_by_rule(dry_run_with(tmp_path, config).stdout)
    assert threads["sample_responses"] == 2
    assert threads["pretrain_lm"] == threads["train_reward_model"] == threads["train_rrhf"] == 1
    tiny = threads_by_rule(dry_run_with(tmp_path, TINY).stdout)
    assert tiny["train_reward_model"] == tiny["pretrain_lm"] == 2 and tiny["train_rrhf"] == 1


def test_impossible_samplers_device_and_model_paths_stop_before_any_job(tmp_path):
    # rrhf.plan.checks (tests/plan/test_config_checks.py has each case); here: common.smk runs them, from the workdir.
    def edit(config):
        config["device"] = "cuda" if not torch_cuda_available() else "gpu"
        config["sampling"]["samplers"]["diverse_beam"].update(num_beams=4, num_beam_groups=3)
        config["sampling"]["samplers"]["beam"].update(num_responses=6, num_beams=4)
        (tmp_path / "empty_model").mkdir()
        config["models"]["base"] = {"display_name": "b", "path": "./no/such/model"}
        config["models"]["instruct"] = {"display_name": "i", "path": "empty_model"}
        config["models"]["evaluation_lm"] = {"display_name": "e", "path": "org/not-in-the-cache"}

    result = dry_run_with(tmp_path, broken(edit))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for expected in ("sampling.samplers.beam.num_responses: 6 responses per prompt, but beam search keeps only "
                     "num_beams 4",
                     "sampling.samplers.diverse_beam.num_beams: 4 beams cannot be split into num_beam_groups 3",
                     "device: ",
                     f"models.base.path: './no/such/model' does not exist (looked for {tmp_path}/no/such/model)",
                     "models.instruct.path: 'empty_model' is not a transformers model folder: it has no config.json",
                     "models.evaluation_lm.path: 'org/not-in-the-cache' is not a local folder",
                     "while the hub is offline"):
        assert expected in output, expected
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def torch_cuda_available():
    import torch

    return torch.cuda.is_available()


def repository_with_config(folder, text):
    """A copy of the workflow (links to its Snakefile, rules, library, envs) whose config/config.yaml is ``text``."""
    (folder / "config").mkdir(parents=True)
    for name in ("Snakefile", "workflow", "src", "envs"):
        (folder / name).symlink_to(REPO / name)
    for name in ("schema.yaml", "tables.yaml"):
        (folder / "config" / name).symlink_to(REPO / "config" / name)
    (folder / "config" / "config.yaml").write_text(text)
    return folder


@pytest.mark.parametrize("text, expected", [
    ("offline: true\ndata:\n  dataset: x\n\ttrain_prompts: 3\n", "config.yaml:4:1: not valid YAML"),
    ("", "config.yaml: the config file is empty"),
])
def test_a_broken_default_config_file_is_named_with_its_line(tmp_path, text, expected):
    # Snakemake said only "Config file is not valid JSON or YAML" / "... with keys at top level".
    repository = repository_with_config(tmp_path / "repository", text)
    result = snakemake(tmp_path / "work", [], "-n", timeout=120, snakefile=repository / "Snakefile")
    assert result.returncode != 0
    assert f"{repository}/config/{expected}" in result.stdout + result.stderr


def test_a_key_given_twice_in_a_configfile_is_named_with_its_lines(tmp_path):
    # PyYAML (and so Snakemake) keeps the second `data:` block silently, dropping the first's other keys.
    text = (REPO / "config" / "config.yaml").read_text() + "\ndata:\n  dataset: synthetic_hh\n  train_prompts: 5\n"
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    line = text.splitlines().index("data:", text.splitlines().index("data:") + 1) + 1
    result = snakemake(tmp_path, [path], "-n", timeout=120)
    assert result.returncode != 0
    assert f"{path}:{line}:1: the key 'data' appears again (first on line " in result.stdout + result.stderr


def test_every_check_of_the_plan_fires_before_any_job(tmp_path, synthetic_frame):
    # Each was accepted by the schema and failed a job or more later (or never): the plan names them all at once.
    from rrhf.io import write_parquet

    write_parquet(synthetic_frame.head(40), tmp_path / "resources/data/synthetic_hh/test.parquet", {})  # prepared

    def edit(c):
        c["rrhf"]["training"].update(learning_rate=float("nan"))
        c["resampling"].update(kl_coef=float("inf"))
        c.update(shards=3, tables=str(NOT_ROWS_TABLES), reward_model="instruct")
        c["resources"]["rules"].update(train_rrhf={"gpu": 64})
        c["table_settings"].update({"OP-32": "OP-0"})
        c["models"]["base"]["build"]["architecture"].update(n_head=3)

    result = dry_run_with(tmp_path, broken(edit))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for expected in ("rrhf.training.learning_rate: nan is not a finite number",
                     "resampling.kl_coef: inf is not a finite number",
                     "shards: 3 shards, but 256 training prompts in generation batches of sampling.batch_size 128 "
                     "make 2 batch(es)",
                     "rrhf.training.batch_size: 256 training prompts make 32 batch(es) of 8, fewer than the 64 "
                     "processes",
                     "table6 row 1: 'DP' is not a row",
                     "table_settings.OP-32: 'OP-0'",
                     "reward_model: 'instruct' is a sft build",
                     "models.base.build.architecture.n_head: 3 heads do not split n_embd 128",
                     "data.test_prompts: 256 prompts asked for, but resources/data/synthetic_hh/test.parquet has "
                     "only 40; ask for at most 40"):
        assert expected in output, expected
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources/models").exists()


@pytest.mark.parametrize("target, expected", [
    ("results/eval/instruct/IP-0/metrics.json", "setting 'IP-0': in IP-n, n is a whole number from 1, not '0'"),
    ("results/models/instruct/OP-x+KL", "setting 'OP-x+KL': in OP-k and OP-k+KL, k is a whole number from 1"),
    ("results/scored/instruct/IP-00.parquet", "setting 'IP-00': in IP-n, n is a whole number from 1, not '00'"),
    ("results/replicate2/eval/instruct/IP-0/metrics.json", "setting 'IP-0': in IP-n, n is a whole number from 1"),
])
def test_an_impossible_target_is_named_before_any_job(tmp_path, target, expected):
    # These ended in Snakemake's bare "No rule to produce" (every pattern: tests/plan/test_plan.py).
    result = snakemake(tmp_path, [REPO / "config" / "config.yaml"], "-n", target, timeout=120)
    assert result.returncode != 0
    assert f"target {target}: {expected}" in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists() and not (tmp_path / "results").exists()


def test_findings_without_claims_say_so_before_any_job(tmp_path):
    config = broken(lambda c: c.update(findings=None))
    assert dry_run_with(tmp_path, config).returncode == 0  # the tables need no claims
    result = snakemake(tmp_path, [tmp_path / "config.yaml"], "-n", "results/findings.csv", timeout=120)
    assert result.returncode != 0
    assert "findings: null in the config, so there are no claims to measure" in result.stdout + result.stderr
    assert not (tmp_path / "results").exists()
