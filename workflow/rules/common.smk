# The plan of the run (src/rrhf/plan/), checked before any job, and the path and input functions of the rules.
import os
import re
from pathlib import Path

from rrhf.plan.checks import target_problems
from rrhf.studies.findings.claims import claims_for_rule
from rrhf.models.sources import import_input, imported_models, prompt_format_model
from rrhf.plan.plan import SAMPLERS, Plan  # src/ is on sys.path (Snakefile)
from rrhf.plan.replicates import FOLDER_PATTERN
from rrhf.plan.settings import (
    IMPOSSIBLE_SETTING_PATTERN,
    LATER_ITERATION_PATTERN,
    ONLINE_PATTERN,
    PPO_SETTINGS,
    evaluated_settings_pattern,
    names_pattern,
    trained_settings_pattern,
)
from rrhf.plan.table_rows import entries, labelled_rows, report_rows
from snakemake.utils import min_version, validate

min_version("9.0")

# The schema's errors name the key; defaults are filled in here, once (the schema is the only place they live).
validate(config, "../../config/schema.yaml", set_default=True)
# Every other check (names, sizes, tables, files) stops here, naming the key.
PLAN = Plan.from_config(config, workflow.basedir)

# The library lives in src/; every job (local, conda or SLURM) finds it through PYTHONPATH.
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")]))
)
if config["offline"]:
    os.environ.update(HF_HUB_OFFLINE="1")

ENV = "../../envs/rrhf.yaml"
TRAIN_DATA = PLAN.data_file("train")
TEST_DATA = PLAN.data_file("test")
# Settings an evaluation accepts, and settings a model is trained for (rrhf.plan.settings).
EVALUATED_SETTINGS = evaluated_settings_pattern(PLAN.settings)
TRAINED_SETTINGS = trained_settings_pattern(PLAN.settings)


def sharded(path):
    """The per-shard form of a path when sampling and scoring are sharded: a/b.parquet -> a/b/shard{shard}.parquet."""
    root, extension = os.path.splitext(path)
    return f"{root}/shard{{shard}}{extension}" if PLAN.shards > 1 else path


def shard_of(wildcards):
    """(index, count) of a shard job, or None when sampling and scoring are not sharded."""
    shard = getattr(wildcards, "shard", None)
    return None if shard is None else (int(shard), PLAN.shards)


RESOURCE_NAMES = set()  # every name resources.rules may give: checked against it in the Snakefile


def resources_of(rule_name):
    """A heavy rule's cluster resources: resources, replaced key by key by resources.rules.{rule_name}."""
    RESOURCE_NAMES.add(rule_name)
    return PLAN.rule_resources(rule_name)


def threads_of(rule_name):
    """Threads of a rule's jobs: its cpus_per_task (what SLURM gives it, and what it uses locally)."""
    return PLAN.rule_threads(rule_name)


def build_train_data(wildcards):
    """Training split of the dataset a model build trains on."""
    return PLAN.dataset_file(PLAN.build(wildcards.name)["dataset"], "train")


def dataset_source_files(wildcards):
    """Local input files of a dataset split (anthropic_jsonl files, a local hub-format folder)."""
    spec = config["datasets"][wildcards.dataset]
    if spec["source"] == "anthropic_jsonl":
        return [spec["file"] if spec.get("file") else spec["files"][wildcards.split]]
    if spec["source"] == "hub" and Path(spec["name"]).exists():
        return [spec["name"]]
    return []


def explain_target(target):
    """Raise, naming the problem, for a target that names an impossible setting (rule impossible_setting)."""
    problems = target_problems(PLAN, [target]) or [f"target {target}: no rule makes it"]
    raise ValueError("\n  ".join(problems))


FINDINGS_CLAIMS = claims_for_rule(PLAN, PLAN.claims)


def findings_input(wildcards):
    """Every file the claims read, in every replicate; none to read is an error (config findings: null)."""
    if not FINDINGS_CLAIMS:
        raise ValueError("findings: null in the config, so there are no claims to measure; set it to "
                         "config/findings.yaml or another file of claims")
    return sorted({path for claim in FINDINGS_CLAIMS for pair in claim["files"] for path in pair})


def setting_parts(wildcards):
    return PLAN.setting_parts(wildcards.policy, wildcards.setting, wildcards.replicate)


def online_provided_input(wildcards):
    """The scored provided responses an OP-{k} run adds to its samples, if its setting has them."""
    if not PLAN.setting_spec(wildcards.setting)["provided"]:
        return {}
    return {"provided": PLAN.provided_rewards_file(wildcards.replicate)}


def evaluated_model(wildcards):
    return PLAN.evaluated_model(wildcards.policy, wildcards.setting, wildcards.replicate)


def evaluated_model_input(wildcards):
    return PLAN.evaluated_model_input(wildcards.policy, wildcards.setting, wildcards.replicate)


def starting_model(wildcards, setting=None):
    return PLAN.starting_model(wildcards.policy, setting or wildcards.setting, wildcards.replicate)


def starting_model_input(wildcards, setting=None):
    return PLAN.starting_model_input(wildcards.policy, setting or wildcards.setting, wildcards.replicate)


wildcard_constraints:
    dataset=names_pattern(config["datasets"]),
    split="train|test",
    policy=names_pattern(set(PLAN.policies.values())),
    sampler=names_pattern(SAMPLERS),
    shard=r"\d+",
    replicate=FOLDER_PATTERN,


def overoptimisation_input(wildcards):
    files = PLAN.overoptimisation_inputs(wildcards.replicate)
    # a trained model is a directory output: its folder is the input, the log file in it the param
    return {"samples": files["samples"], "trained_models": [os.path.dirname(p) for p in files["curves"].values()],
            "points": list(files["points"].values())}


# Every reward build in every replicate (rule reward_models).
REWARD_BUILDS = [(r, name) for r in PLAN.replicates.numbers() for name in PLAN.built_models("reward")]
