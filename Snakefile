# rrhf-workflow: RRHF (Yuan et al., 2023) and its baselines, end to end.
# docs/experiment.md describes the experiment; config/README.md every config key (from config/schema.yaml).
import os
import sys

sys.path.insert(0, os.path.join(workflow.basedir, "src"))  # the library, for the checks before any job
from rrhf.config.files import check_config_files, check_overlay, replaces_default_config
from rrhf.plan.checks import rule_name_problems
from rrhf.plan.memory_plan import report_gpu_memory
from snakemake.logging import logger

# The run's config: the tiny default, config/config.yaml, with the command line's --configfile files laid over it
# key by key (Snakemake's merge), unless they make a complete config (replaces_default_config: true, as
# config/paper.yaml and config/real.yaml do), which replaces the default (config/README.md).
DEFAULT_CONFIG = os.path.join(workflow.basedir, "config/config.yaml")
READS_DEFAULT_CONFIG = not replaces_default_config(workflow.config_settings.overwrite_config)

# A config file that is empty, not YAML, not a mapping, or gives a key twice stops here, named with its line.
# (Snakemake itself reads --configfile files before this runs: for a broken one it prints an error without file
# or line; `python -m rrhf.config.files FILE` finds the line. It accepts a key given twice, which is caught here.)
check_config_files(([DEFAULT_CONFIG] if READS_DEFAULT_CONFIG else []) + list(workflow.overwrite_configfiles or []))

if READS_DEFAULT_CONFIG:
    check_overlay(DEFAULT_CONFIG, workflow.config_settings.overwrite_config)  # a model entry of another kind

    configfile: DEFAULT_CONFIG


# The report's front page (`snakemake --report results/report.html`); its items are flagged with report() in
# workflow/rules/tables.smk and report.smk, their captions in workflow/report/.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"  # the plan, the paths, every global the rule files share
# The paper's pipeline, stage by stage.
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/impossible_setting.smk"
# The studies (src/rrhf/studies/), one rule file each.
include: "workflow/rules/findings.smk"
include: "workflow/rules/overoptimisation.smk"
include: "workflow/rules/fine_grained.smk"
include: "workflow/rules/human_evaluation.smk"
include: "workflow/rules/preference_methods.smk"


rule all:
    default_target: True
    input:
        # The paper's tables.
        [paths.TABLE(table=table) for table in REPORT_TABLES],
        # What the report shows beside the tables (report.smk): table pages, every trained model's training
        # curves (IP-1's is resampling.setting's: the same model), reward figures, a few generations per row.
        REPORT_FILES,
        # What the rows are judged against: each untrained policy, the dataset's own replies, the reward model.
        [PLAN.evaluation_file(model, "none", "metrics.json") for model in sorted({r["model"] for r in TABLE6_ROWS})],
        [paths.DATASET_REPLIES(replicate="", source=source, name="metrics.json") for source in ("chosen", "rejected")],
        paths.REWARD_MODEL_EVALUATION(replicate="", name="metrics.json"),
        # Each study the config gives (rrhf.studies; none without its key): over-optimisation's curves, the
        # fine-grained table, reward models and annotation page, Tables 3 and 4 with the annotators' pages.
        STUDY_TARGETS,
        # A policy read through its chat template (config/real.yaml): its untrained replies in both prompt formats.
        PROMPT_FORMAT_TARGETS,


# resources.rules may only name rules that take resources (a typo would silently keep the defaults).
if problems := rule_name_problems(PLAN, sorted(RESOURCE_NAMES)):
    raise ValueError("config error(s):\n  " + "\n  ".join(problems))
# When rules ask for GPUs, their memory per process is planned (docs/cluster.md) and printed by the Snakemake that
# schedules the jobs (a dry run included); a rule that cannot fit its GPUs or its mem_mb stops the run here.
if workflow.is_main_process:
    report_gpu_memory(PLAN, logger.info)
