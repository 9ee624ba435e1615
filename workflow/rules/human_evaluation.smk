# Human evaluation (config key `human_evaluation`; rrhf.studies.human_evaluation, docs/human_evaluation.md): the
# paper's Table 3 from blind pairwise judgments of the tables file's `table3` comparisons, and Table 4, each row's
# reply to a few test prompts. Export the pairs (a page and a spreadsheet per annotator), have them judged (people,
# or the simulated annotators on synthetic data), read the judgments back unblinded, and count them. Every step is
# cheap and local.
HUMAN_BATCHES = list(HUMAN_EVALUATION.block.batches) if HUMAN_EVALUATION else []  # one per annotator


localrules:
    export_human_evaluation,
    simulate_annotators,
    import_judgments,
    table3,
    table4,
    table4_page,


rule export_human_evaluation:
    input:
        generations=lambda wildcards: [path for c in HUMAN_EVALUATION.comparisons(wildcards.replicate)
                                       for path in (c["a_generations"], c["b_generations"])],
    output:
        key=paths.HUMAN_EVALUATION(name="pairs.parquet"),
        pages=[
            report(
                paths.HUMAN_EVALUATION(name=f"batch_{k}.html"),
                caption="../report/human_eval_batch.rst",
                category=CATEGORY["human"],
                labels={"batch": str(k), "format": "HTML page for an annotator"},
            )
            for k in HUMAN_BATCHES
        ],
        sheets=[paths.HUMAN_EVALUATION(name=f"batch_{k}.csv") for k in HUMAN_BATCHES],
    params:
        comparisons=lambda wildcards: HUMAN_EVALUATION.comparisons(wildcards.replicate),
        study=HUMAN_EVALUATION.block.as_config() if HUMAN_EVALUATION else None,
    log:
        paths.log_file("export_human_evaluation", paths.HUMAN_EVALUATION(name=""), "export"),
    conda:
        ENV
    script:
        "../scripts/export_human_evaluation.py"


rule simulate_annotators:
    input:
        key=paths.HUMAN_EVALUATION(name="pairs.parquet"),
    output:
        judgments=[paths.HUMAN_EVALUATION(name=f"simulated/batch_{k}.json") for k in HUMAN_BATCHES],
    params:
        annotators=HUMAN_EVALUATION.block.simulated_annotators.as_config() if HUMAN_EVALUATION else None,
        seed=lambda wildcards: PLAN.replicates.seed(
            HUMAN_EVALUATION.block.simulated_annotators.seed, wildcards.replicate, "training"
        ),
    log:
        paths.log_file("simulate_annotators", paths.HUMAN_EVALUATION(name=""), "simulate_annotators"),
    conda:
        ENV
    script:
        "../scripts/simulate_annotators.py"


rule import_judgments:
    input:
        key=paths.HUMAN_EVALUATION(name="pairs.parquet"),
        # people's files (human_evaluation.judgments; replicate 0), else the simulated annotators'
        judgments=lambda wildcards: HUMAN_EVALUATION.judgment_files(wildcards.replicate),
    output:
        judged=paths.HUMAN_EVALUATION(name="judged.parquet"),
    log:
        paths.log_file("import_judgments", paths.HUMAN_EVALUATION(name=""), "import_judgments"),
    conda:
        ENV
    script:
        "../scripts/import_judgments.py"


rule table3:
    input:
        judged=[HUMAN_EVALUATION.file("judged.parquet", r) for r in HUMAN_EVALUATION.replicates()]
        if HUMAN_EVALUATION else [],
    output:
        table=report(
            paths.TABLE(table="table3"),
            caption="../report/table3.rst",
            category=CATEGORY["tables"],
            labels={"table": "Table 3", "format": "csv (download)"},
        ),
    params:
        comparisons=[{"a": c["a"], "b": c["b"]} for c in HUMAN_EVALUATION.comparisons()] if HUMAN_EVALUATION else [],
    log:
        paths.log_file("tables", name="table3"),
    conda:
        ENV
    script:
        "../scripts/table3.py"


rule table4:
    input:
        generations=[row["path"] for row in HUMAN_EVALUATION.table4_rows()] if HUMAN_EVALUATION else [],
    output:
        table=report(
            paths.TABLE(table="table4"),
            caption="../report/table4.rst",
            category=CATEGORY["tables"],
            labels={"table": "Table 4", "format": "csv (download)"},
        ),
    params:
        rows=HUMAN_EVALUATION.table4_rows() if HUMAN_EVALUATION else [],
        prompts=HUMAN_EVALUATION.block.table4_prompts if HUMAN_EVALUATION else None,
        seed=HUMAN_EVALUATION.block.seed if HUMAN_EVALUATION else None,
    log:
        paths.log_file("tables", name="table4"),
    conda:
        ENV
    script:
        "../scripts/table4.py"


rule table4_page:
    input:
        table=paths.TABLE(table="table4"),
    output:
        page=report(
            paths.TABLE_PAGE(table="table4"),
            caption="../report/table4.rst",
            category=CATEGORY["tables"],
            labels={"table": "Table 4", "format": "HTML"},
        ),
    params:
        title=TABLE_TITLES["table4"],
    log:
        paths.log_file("table_page", name="table4"),
    conda:
        ENV
    script:
        "../scripts/table4_page.py"
