# Tables: cheap, run on the submitting machine. Each is in the report, beside its page and figures (report.smk).
# Each table reads every replicate's files, replicate-major (rrhf.report.tables.by_replicate); with more than
# one replicate its rows are means with 95 % intervals.
TABLE6_ROWS = labelled_rows(PLAN, "table6")
TABLE7_ROWS = labelled_rows(PLAN, "table7")
TABLE2_ENTRIES = entries(PLAN, "table2", "metrics.json")
TABLE5_ENTRIES = entries(PLAN, "table5", "pair_accuracy.json")


localrules:
    table2,
    table5,
    table6,
    table7,


rule table2:
    input:
        metrics=[path for r in REPLICATES for _, path in entries(PLAN, "table2", "metrics.json", r)],
    output:
        table=report(
            paths.TABLE(table="table2"),
            caption="../report/table2.rst",
            category=CATEGORY["tables"],
            labels={"table": table_label("table2"), "format": "csv (download)"},
        ),
    params:
        rows=[row for row, _ in TABLE2_ENTRIES],
        replicates=len(REPLICATES),
    log:
        paths.log_file("tables", name="table2"),
    conda:
        ENV
    script:
        "../scripts/table2.py"


rule table5:
    input:
        accuracy=[path for r in REPLICATES for _, path in entries(PLAN, "table5", "pair_accuracy.json", r)],
    output:
        table=report(
            paths.TABLE(table="table5"),
            caption="../report/table5.rst",
            category=CATEGORY["tables"],
            labels={"table": table_label("table5"), "format": "csv (download)"},
        ),
    params:
        rows=[row for row, _ in TABLE5_ENTRIES],
        replicates=len(REPLICATES),
    log:
        paths.log_file("tables", name="table5"),
    conda:
        ENV
    script:
        "../scripts/table5.py"


rule table6:
    input:
        metrics=[PLAN.evaluation_file(row["model"], row["setting"], "metrics.json", r)
                 for r in REPLICATES for row in TABLE6_ROWS],
        scored=[path for r in REPLICATES for row in TABLE6_ROWS
                if (path := PLAN.scored_file(row["model"], row["setting"], r))],
    output:
        table=report(
            paths.TABLE(table="table6"),
            caption="../report/table6.rst",
            category=CATEGORY["tables"],
            labels={"table": table_label("table6"), "format": "csv (download)"},
        ),
    params:
        rows=[{"policy": r["policy"], "setting": r["setting"]} for r in TABLE6_ROWS],
        # Per row its training set, or None for online rows (sampled during training: no statistics).
        scored=[PLAN.scored_file(row["model"], row["setting"], r) for r in REPLICATES for row in TABLE6_ROWS],
        replicates=len(REPLICATES),
    log:
        paths.log_file("tables", name="table6"),
    conda:
        ENV
    script:
        "../scripts/table6.py"


rule table7:
    input:
        metrics=[PLAN.evaluation_file(row["model"], row["setting"], "metrics.json", r)
                 for r in REPLICATES for row in TABLE7_ROWS],
    output:
        table=report(
            paths.TABLE(table="table7"),
            caption="../report/table7.rst",
            category=CATEGORY["tables"],
            labels={"table": table_label("table7"), "format": "csv (download)"},
        ),
    params:
        rows=[{k: r[k] for k in ("policy", "setting", "rank_weight")} for r in TABLE7_ROWS],
        replicates=len(REPLICATES),
    log:
        paths.log_file("tables", name="table7"),
    conda:
        ENV
    script:
        "../scripts/table7.py"
