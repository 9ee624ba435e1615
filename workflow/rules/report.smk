# The Snakemake report (`snakemake --report results/report.html`): besides the tables (flagged in tables.smk),
# each table as a readable page, the training curves of every trained model, the training and evaluation
# rewards of each table's rows and a few generations per row. Captions are in workflow/report/. Every item
# is cheap (seconds), runs on the submitting machine, and is made by `all`.

localrules:
    table_page,
    plot_loss_curve,
    plot_training_rewards,
    plot_evaluation_rewards,
    generation_samples,


rule table_page:
    input:
        table=paths.TABLE(),
    output:
        page=report(
            paths.TABLE_PAGE(),
            caption="../report/table_page.rst",
            category=CATEGORY["tables"],
            labels=lambda wildcards: {"table": table_label(wildcards.table), "format": "HTML"},
        ),
    params:
        title=lambda wildcards: TABLE_TITLES[wildcards.table],
        note="Each row as written in the table's CSV; an empty cell (a dash) has no value, as in the paper.",
    log:
        paths.log_file("table_page", paths.TABLE_PAGE),
    wildcard_constraints:
        table="|".join([*REPORT_TABLES, "table3"]),
    conda:
        ENV
    script:
        "../scripts/table_page.py"


rule plot_loss_curve:
    input:
        model=paths.TRAINED_MODEL(replicate=""),
    output:
        figure=report(
            paths.LOSS_CURVE(),
            caption="../report/loss_curve.rst",
            category=CATEGORY["curves"],
            subcategory=lambda wildcards: PLAN.display_name(wildcards.policy),
            labels=lambda wildcards: {"model": PLAN.display_name(wildcards.policy),
                                      "setting": wildcards.setting},
        ),
    params:
        title=lambda wildcards: f"{PLAN.display_name(wildcards.policy)}, {wildcards.setting}: training log",
        about=lambda wildcards: PLAN.training_about(wildcards.setting),
    log:
        paths.log_file("plot_loss_curve", paths.LOSS_CURVE),
    wildcard_constraints:
        setting=TRAINED_SETTINGS,
    conda:
        ENV
    script:
        "../scripts/plot_loss_curve.py"


rule plot_training_rewards:
    input:
        training=lambda wildcards: [row["training"][0] for row in report_rows(PLAN, wildcards.table) if row["training"]],
    output:
        figure=report(
            paths.TRAINING_REWARDS_FIGURE(),
            caption="../report/train_rewards.rst",
            category=CATEGORY["rewards"],
            labels=lambda wildcards: {"table": table_label(wildcards.table),
                                      "figure": "training-set rewards"},
        ),
    params:
        rows=lambda wildcards: [{"label": row["label"], "path": row["training"][0], "kind": row["training"][1]}
                                for row in report_rows(PLAN, wildcards.table) if row["training"]],
        title=lambda wildcards: f"{table_label(wildcards.table)}: rewards of each row's training set",
    log:
        paths.log_file("plot_training_rewards", paths.TRAINING_REWARDS_FIGURE),
    wildcard_constraints:
        table="|".join(EVALUATED_TABLES) or "(?!)",
    conda:
        ENV
    script:
        "../scripts/plot_training_rewards.py"


rule plot_evaluation_rewards:
    input:
        generations=lambda wildcards: [row["generations"] for row in report_rows(PLAN, wildcards.table)],
    output:
        figure=report(
            paths.EVALUATION_REWARDS_FIGURE(),
            caption="../report/eval_rewards.rst",
            category=CATEGORY["rewards"],
            labels=lambda wildcards: {"table": table_label(wildcards.table),
                                      "figure": "evaluation: reward against gold"},
        ),
    params:
        rows=lambda wildcards: [{"label": row["label"], "path": row["generations"]}
                                for row in report_rows(PLAN, wildcards.table)],
        title=lambda wildcards: f"{table_label(wildcards.table)}: "
        "each test generation's reward and gold reward",
    log:
        paths.log_file("plot_evaluation_rewards", paths.EVALUATION_REWARDS_FIGURE),
    wildcard_constraints:
        table="|".join(EVALUATED_TABLES) or "(?!)",
    conda:
        ENV
    script:
        "../scripts/plot_evaluation_rewards.py"


rule generation_samples:
    input:
        generations=lambda wildcards: [row["generations"] for row in report_rows(PLAN, wildcards.table)],
    output:
        page=report(
            paths.GENERATIONS_PAGE(),
            caption="../report/generations.rst",
            category=CATEGORY["generations"],
            labels=lambda wildcards: {"table": table_label(wildcards.table)},
        ),
    params:
        rows=lambda wildcards: [{"policy": row["policy"], "setting": row["setting"], "path": row["generations"]}
                                for row in report_rows(PLAN, wildcards.table)],
        title=lambda wildcards: f"{table_label(wildcards.table)}: "
        f"{REPORT_EXAMPLES} test prompts, each row's reply",
        examples=REPORT_EXAMPLES,
    log:
        paths.log_file("generation_samples", paths.GENERATIONS_PAGE),
    wildcard_constraints:
        table="|".join(EVALUATED_TABLES) or "(?!)",
    conda:
        ENV
    script:
        "../scripts/generation_samples.py"
