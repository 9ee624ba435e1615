# The plan of the run (src/rrhf/plan/, with the studies of src/rrhf/studies/), checked before any job; where its
# files go (rrhf.plan.paths); and every global and helper the rule files share, each defined here, once.
import os
from pathlib import Path

from snakemake.logging import logger

from rrhf.models.sources import import_input, imported_models, prompt_format_model
from rrhf.plan import paths
from rrhf.plan.checks import target_problems
from rrhf.plan.plan import SAMPLERS, Plan  # src/ is on sys.path (Snakefile)
from rrhf.plan.replicates import FOLDER_PATTERN
from rrhf.plan.settings import (
    IMPOSSIBLE_SETTING_PATTERN,
    LATER_ITERATION_PATTERN,
    evaluated_settings_pattern,
    names_pattern,
    trained_by_pattern,
    trained_settings_pattern,
)
from rrhf.plan.report_contents import (
    CATEGORY,
    REPORT_EXAMPLES,
    REPORT_TABLES,
    TABLE_TITLES,
    evaluated_tables,
    report_files,
    summary_tables,
    table_label,
)
from rrhf.plan.table_rows import entries, labelled_rows, report_rows
from rrhf.studies.registry import STUDIES
from snakemake.utils import min_version, validate

min_version("9.0")

# The schema's errors name the key; defaults are filled in here, once (the schema is the only place they live).
validate(config, "../../config/schema.yaml", set_default=True)
# Every other check (names, sizes, tables, files, each study's) stops here, naming the key.
PLAN = Plan.from_config(config, workflow.basedir, STUDIES)

# The library lives in src/; every job (local, conda or SLURM) finds it through PYTHONPATH.
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")]))
)
if config["offline"]:
    os.environ.update(HF_HUB_OFFLINE="1")

ENV = "../../envs/rrhf.yaml"
TRAIN_DATA = PLAN.data_file("train")
TEST_DATA = PLAN.data_file("test")
# Every replicate's number: a table or a study reads its files in each, replicate-major.
REPLICATES = list(PLAN.replicates.numbers())
# Settings an evaluation accepts, and settings a model is trained for (rrhf.plan.settings).
EVALUATED_SETTINGS = evaluated_settings_pattern(PLAN.settings)
TRAINED_SETTINGS = trained_settings_pattern(PLAN.settings)
# The studies (rrhf.studies): each None when the config leaves its key out.
OVEROPTIMISATION = PLAN.studies["overoptimisation"]
FINE_GRAINED = PLAN.studies["fine_grained"]
HUMAN_EVALUATION = PLAN.studies["human_evaluation"]
METHODS = PLAN.studies["methods"]
FINDINGS = PLAN.studies["findings"]
# What an inference job runs on: the device and the dtype of its weights (config device, precision.dtype).
INFERENCE = {"device": config["device"], "dtype": config["precision"]["dtype"]}


def sharded(path):
    """A path in its per-shard form when sampling and scoring are sharded (rrhf.plan.paths.sharded)."""
    return paths.sharded(path, PLAN.shards)


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


def reward_model_input(wildcards):
    """The replicate's reward model (and a local backbone folder) as a job's input."""
    return PLAN.reward_model_input(wildcards.replicate)


def reward_model_source(wildcards):
    """How a job loads the replicate's reward model (rrhf.models.loading.load_reward_model)."""
    return PLAN.reward_model_source(wildcards.replicate)


def policy_input(wildcards):
    """The replicate's untrained policy as a job's input."""
    return PLAN.model_input(wildcards.policy, wildcards.replicate)


def policy_path(wildcards):
    """Where a job loads the replicate's untrained policy from."""
    return PLAN.model_path(wildcards.policy, wildcards.replicate)


def build_train_data(wildcards):
    """Training split of the dataset a model build trains on."""
    return PLAN.dataset_file(PLAN.build(wildcards.name)["dataset"], "train")


def dataset_source_files(wildcards):
    """Local input files of a dataset split (anthropic_jsonl files, a local hub-format folder)."""
    return PLAN.dataset_source_files(wildcards.dataset, wildcards.split)


def explain_target(target):
    """Raise, naming the problem, for a target that names an impossible setting (rule impossible_setting)."""
    problems = target_problems(PLAN, [target]) or [f"target {target}: no rule makes it"]
    raise ValueError("\n  ".join(problems))


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


# The report's contents (rrhf.plan.report_contents): its tables' titles and categories, and every page and figure
# `all` makes beside the tables' CSVs.
EVALUATED_TABLES = evaluated_tables(PLAN)
REPORT_FILES = report_files(PLAN)
# The prompt formats on one real model (results/prompt_formats.csv, docs/real_model.md): the first initial policy
# that reads its prompts through its chat template (none in the tiny default, whose policies read raw text).
PROMPT_FORMAT_MODEL = prompt_format_model(config["models"], config["policies"])
PROMPT_FORMAT_TARGETS = [str(paths.PROMPT_FORMATS)] if PROMPT_FORMAT_MODEL else []
# What `all` builds of each study the config gives; what one leaves out, and why, goes to the log.
STUDY_TARGETS = [target for study in PLAN.active_studies() for target in study.targets(logger.warning)]

SUMMARY_TABLES = summary_tables(PLAN, STUDY_TARGETS + PROMPT_FORMAT_TARGETS)  # results/summary.md's tables

REWARD_BUILDS = PLAN.reward_builds()  # (replicate, models entry) of every reward build (rule reward_models)
