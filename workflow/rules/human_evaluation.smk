# Human evaluation (config key `human_evaluation`; docs/human_evaluation.md): the paper's Table 3 from blind
# pairwise judgments of the tables file's `table3` comparisons, and Table 4, each row's reply to a few test prompts.
# Export the pairs (a page and a spreadsheet per annotator), have them judged (people, or the simulated annotators
# on synthetic data), read the judgments back unblinded, and count them. Every step is cheap and local.
from rrhf.studies.human_evaluation.study import (
    batch_files,
    comparisons,
    human_evaluation_file,
    human_replicates,
    judgment_files,
    table4_rows,
)

HUMAN = PLAN.human_evaluation
HUMAN_REPLICATES = human_replicates(PLAN) if HUMAN else []
HUMAN_BATCHES = list(HUMAN.batches) if HUMAN else []  # one per annotator


localrules:
    export_human_evaluation,
    simulate_annotators,
    import_judgments,
    table3,
    table4,
    table4_page,


rule export_human_evaluation:
    input:
        generations=lambda wildcards: [path for c in comparisons(PLAN, wildcards.replicate)
                                       for path in (c["a_generations"], c["b_generations"])],
    output:
        key="results/{replicate}human_eval/pairs.parquet",
        pages=[
            report(
                f"results/{{replicate}}human_eval/batch_{k}.html",
                caption="../report/human_eval_batch.rst",
                category=CATEGORY["human"],
                labels={"batch": str(k), "format": "HTML page for an annotator"},
            )
            for k in HUMAN_BATCHES
        ],
        sheets=[f"results/{{replicate}}human_eval/batch_{k}.csv" for k in HUMAN_BATCHES],
    params:
        comparisons=lambda wildcards: comparisons(PLAN, wildcards.replicate),
        study=HUMAN.as_config() if HUMAN else None,
    log:
        "logs/human_eval/{replicate}export.log",
    conda:
        ENV
    script:
        "../scripts/export_human_evaluation.py"


rule simulate_annotators:
    input:
        key="results/{replicate}human_eval/pairs.parquet",
    output:
        judgments=[f"results/{{replicate}}human_eval/simulated/batch_{k}.json" for k in HUMAN_BATCHES],
    params:
        annotators=HUMAN.simulated_annotators.as_config() if HUMAN else None,
        seed=lambda wildcards: PLAN.replicates.seed(HUMAN.simulated_annotators.seed, wildcards.replicate, "training"),
    log:
        "logs/human_eval/{replicate}simulate_annotators.log",
    conda:
        ENV
    script:
        "../scripts/simulate_annotators.py"


rule import_judgments:
    input:
        key="results/{replicate}human_eval/pairs.parquet",
        # people's files (human_evaluation.judgments; replicate 0), else the simulated annotators'
        judgments=lambda wildcards: judgment_files(PLAN, wildcards.replicate),
    output:
        judged="results/{replicate}human_eval/judged.parquet",
    log:
        "logs/human_eval/{replicate}import_judgments.log",
    conda:
        ENV
    script:
        "../scripts/import_judgments.py"


rule table3:
    input:
        judged=[human_evaluation_file(PLAN, "judged.parquet", r) for r in HUMAN_REPLICATES],
    output:
        table=report(
            "results/table3.csv",
            caption="../report/table3.rst",
            category=CATEGORY["tables"],
            labels={"table": "Table 3", "format": "csv (download)"},
        ),
    params:
        comparisons=[{"a": c["a"], "b": c["b"]} for c in comparisons(PLAN)] if HUMAN else [],
    log:
        "logs/tables/table3.log",
    conda:
        ENV
    script:
        "../scripts/table3.py"


rule table4:
    input:
        generations=[row["path"] for row in table4_rows(PLAN)] if HUMAN else [],
    output:
        table=report(
            "results/table4.csv",
            caption="../report/table4.rst",
            category=CATEGORY["tables"],
            labels={"table": "Table 4", "format": "csv (download)"},
        ),
    params:
        rows=table4_rows(PLAN) if HUMAN else [],
        prompts=HUMAN.table4_prompts if HUMAN else None,
        seed=HUMAN.seed if HUMAN else None,
    log:
        "logs/tables/table4.log",
    conda:
        ENV
    script:
        "../scripts/table4.py"


rule table4_page:
    input:
        table="results/table4.csv",
    output:
        page=report(
            "results/report/table4.html",
            caption="../report/table4.rst",
            category=CATEGORY["tables"],
            labels={"table": "Table 4", "format": "HTML"},
        ),
    params:
        title=TABLE_TITLES["table4"],
    log:
        "logs/report/table4_page.log",
    conda:
        ENV
    script:
        "../scripts/table4_page.py"


# What `all` makes of it: Table 3 (and its page) when its judgments can be read (people's folder given and not
# empty, or simulated annotators), Table 4, and the export's pages, which the report links.
HUMAN_TARGETS = []
if HUMAN is not None:
    HUMAN_TARGETS += ["results/table4.csv", "results/report/table4.html"] if PLAN.tables.get("table4") else []
    if PLAN.tables.get("table3"):
        HUMAN_TARGETS += batch_files(PLAN, "html") + batch_files(PLAN, "csv")
        if HUMAN.judgments and not judgment_files(PLAN):
            print(f"human_evaluation.judgments: no judgment files in {HUMAN.judgments} yet: `all` makes the pages "
                  "to hand out (results/human_eval/batch_*.html) and leaves out results/table3.csv", file=sys.stderr)
        else:
            HUMAN_TARGETS += ["results/table3.csv", "results/report/table3.html"]
