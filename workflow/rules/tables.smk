# Tables and figures: cheap, run on the submitting machine.

TABLE6_ROWS = table_rows("table6")
TABLE7_ROWS = table_rows("table7")
TABLE2_ENTRIES = table2_entries()
TABLE5_ENTRIES = table5_entries()


localrules:
    table2,
    table5,
    table6,
    table7,
    plot_loss_curve,


rule table2:
    input:
        metrics=[path for _, path in TABLE2_ENTRIES],
    output:
        table="results/table2.csv",
    params:
        rows=[row for row, _ in TABLE2_ENTRIES],
    log:
        "logs/tables/table2.log",
    conda:
        ENV
    script:
        "../scripts/table2.py"


rule table5:
    input:
        accuracy=[path for _, path in TABLE5_ENTRIES],
    output:
        table="results/table5.csv",
    params:
        rows=[row for row, _ in TABLE5_ENTRIES],
    log:
        "logs/tables/table5.log",
    conda:
        ENV
    script:
        "../scripts/table5.py"


rule table6:
    input:
        metrics=[evaluation_file(r["model"], r["setting"], "metrics.json") for r in TABLE6_ROWS],
        scored=[path for r in TABLE6_ROWS if (path := scored_file(r["model"], r["setting"]))],
    output:
        table="results/table6.csv",
    params:
        rows=[{"policy": r["policy"], "setting": r["setting"]} for r in TABLE6_ROWS],
        # Per row its training set, or None for online rows (sampled during training: no statistics).
        scored=[scored_file(r["model"], r["setting"]) for r in TABLE6_ROWS],
    log:
        "logs/tables/table6.log",
    conda:
        ENV
    script:
        "../scripts/table6.py"


rule table7:
    input:
        metrics=[evaluation_file(r["model"], r["setting"], "metrics.json") for r in TABLE7_ROWS],
    output:
        table="results/table7.csv",
    params:
        rows=[{k: r[k] for k in ("policy", "setting", "rank_weight")} for r in TABLE7_ROWS],
    log:
        "logs/tables/table7.log",
    conda:
        ENV
    script:
        "../scripts/table7.py"


rule plot_loss_curve:
    input:
        model="results/models/{policy}/{setting}",
    output:
        figure="results/figures/loss_curve_{policy}_{setting}.png",
    params:
        title=lambda wildcards: f"RRHF loss: {MODELS[wildcards.policy]['display_name']}, {wildcards.setting}",
    log:
        "logs/plot_loss_curve/{policy}_{setting}.log",
    wildcard_constraints:
        setting=f"{names_pattern(SETTINGS)}|{LATER_ITERATION_PATTERN}|{ONLINE_PATTERN}",
    conda:
        ENV
    script:
        "../scripts/plot_loss_curve.py"
