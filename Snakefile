# rrhf-workflow: RRHF (Yuan et al., 2023) and its baselines, end to end.
# docs/experiment.md describes the experiment; config/schema.yaml describes every config key.
import os

# The tiny default, unless the command line names config files (e.g.
# --configfile config/paper.yaml): those then replace it rather than merge into it.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config/config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/score.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/tables.smk"


rule all:
    default_target: True
    input:
        "results/table2.csv",
        "results/table5.csv",
        "results/table6.csv",
        "results/table7.csv",
        # (IP-1's curve is resampling.setting's: the same model.)
        sorted({f"results/figures/loss_curve_{r['model']}_{trained_setting(r['setting'])}.png" for r in TABLE6_ROWS}),
        # What the rows are judged against: each untrained policy, the dataset's own replies, the reward model.
        [f"results/eval/{model}/none/metrics.json" for model in sorted({r["model"] for r in TABLE6_ROWS})],
        "results/eval/dataset/chosen/metrics.json",
        "results/eval/dataset/rejected/metrics.json",
        "results/eval/reward_model/metrics.json",
