# Findings: each claim of config/findings.yaml (config key `findings`) measured over the replicates, with its
# interval and verdict (rrhf.studies.findings.verdicts); and results/summary.md, the run's results in one page. Not part
# of `all`: `make findings`, or `snakemake --cores 2 results/findings.csv --config replicates=3` (docs/findings.md).

localrules:
    findings_report,
    findings,
    findings_page,
    findings_figure,
    plot_table_intervals,
    summary,


rule findings:
    input:
        files=findings_input,
    output:
        findings=report(
            "results/findings.csv",
            caption="../report/findings.rst",
            category=CATEGORY["tables"],
            labels={"table": "Findings", "format": "csv (download)"},
        ),
    params:
        claims=FINDINGS_CLAIMS,
    log:
        "logs/findings/findings.log",
    conda:
        ENV
    script:
        "../scripts/measure_claims.py"


rule findings_page:
    input:
        table="results/findings.csv",
    output:
        page=report(
            "results/report/findings.html",
            caption="../report/findings.rst",
            category=CATEGORY["tables"],
            labels={"table": "Findings", "format": "HTML"},
        ),
    params:
        title="Findings: the paper's claims, each judged by its 95 % interval over replicates",
        note="effect: row minus versus, the mean over replicates of each replicate's effect (paired over the "
        "same test prompts for reward and gold reward); ci_low and ci_high: its 95 % t-interval; holds: the "
        "interval excludes zero on the claimed side; contradicted: on the other side; inconclusive: it "
        "contains zero, or there is one replicate.",
    log:
        "logs/findings/findings_page.log",
    conda:
        ENV
    script:
        "../scripts/table_page.py"


rule findings_figure:
    input:
        findings="results/findings.csv",
    output:
        figure=report(
            "results/figures/findings.png",
            caption="../report/findings.rst",
            category=CATEGORY["tables"],
            labels={"table": "Findings", "format": "figure"},
        ),
    params:
        title="Each claim's effect (row - versus) with its 95 % interval over replicates",
    log:
        "logs/findings/findings_figure.log",
    conda:
        ENV
    script:
        "../scripts/plot_findings.py"


# With replicates >= 2, each table's rows as means with 95 % error bars (in `all`: REPORT_FILES).
rule plot_table_intervals:
    input:
        table="results/{table}.csv",
    output:
        figure=report(
            "results/figures/intervals_{table}.png",
            caption="../report/table_intervals.rst",
            category=CATEGORY["rewards"],
            labels=lambda wildcards: {"table": table_label(wildcards.table), "figure": "means over replicates"},
        ),
    params:
        title=lambda wildcards: TABLE_TITLES[wildcards.table],
    log:
        "logs/report/intervals_{table}.log",
    wildcard_constraints:
        table="|".join(REPORT_TABLES),
    conda:
        ENV
    script:
        "../scripts/plot_table_intervals.py"


rule summary:
    input:
        # (functions: Table 3 is there when human_evaluation.smk, read after this file, makes it)
        tables=lambda wildcards: [f"results/{table}.csv" for table in summary_tables()],
        findings="results/findings.csv",
    output:
        summary="results/summary.md",
    params:
        titles=lambda wildcards: [TABLE_TITLES[table] for table in summary_tables()],
        about={"replicates": PLAN.replicates.count, "reseeded": list(PLAN.replicates.reseeded),
               "configfiles": [os.path.relpath(path, workflow.basedir) for path in workflow.configfiles]},
    log:
        "logs/findings/summary.log",
    conda:
        ENV
    script:
        "../scripts/summary.py"


# `make findings`: the claims judged over the config's replicates, on a page, a figure and in the summary, with
# each table's means and intervals (REPORT_FILES adds their figures when replicates >= 2), and every reward
# build's agreement with gold in every replicate (results/reward_models.csv: reward_unbiased is built here only).
rule findings_report:
    input:
        "results/findings.csv",
        "results/summary.md",
        "results/report/findings.html",
        "results/figures/findings.png",
        "results/reward_models.csv",
        REPORT_FILES,
