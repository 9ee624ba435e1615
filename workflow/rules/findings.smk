# Findings (config key `findings`; rrhf.studies.findings): each claim of config/findings.yaml measured over the
# replicates, with its interval and verdict; and results/summary.md, the run's results in one page. Not part of
# `all`: `make findings`, or `snakemake --cores 2 results/findings.csv --config replicates=3` (docs/findings.md).
from rrhf.studies.findings.study import claim_files


localrules:
    findings_report,
    findings,
    findings_page,
    findings_figure,
    plot_table_intervals,
    summary,


rule findings:
    input:
        files=lambda wildcards: claim_files(FINDINGS),
    output:
        findings=report(
            paths.FINDINGS(),
            caption="../report/findings.rst",
            category=CATEGORY["tables"],
            labels={"table": "Findings", "format": "csv (download)"},
        ),
    params:
        claims=FINDINGS.rule_claims if FINDINGS else [],
    log:
        paths.log_file("findings", name="findings"),
    conda:
        ENV
    script:
        "../scripts/measure_claims.py"


rule findings_page:
    input:
        table=paths.FINDINGS(),
    output:
        page=report(
            paths.FINDINGS_PAGE(),
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
        paths.log_file("findings", name="findings_page"),
    conda:
        ENV
    script:
        "../scripts/table_page.py"


rule findings_figure:
    input:
        findings=paths.FINDINGS(),
    output:
        figure=report(
            paths.FINDINGS_FIGURE(),
            caption="../report/findings.rst",
            category=CATEGORY["tables"],
            labels={"table": "Findings", "format": "figure"},
        ),
    params:
        title="Each claim's effect (row - versus) with its 95 % interval over replicates",
    log:
        paths.log_file("findings", name="findings_figure"),
    conda:
        ENV
    script:
        "../scripts/plot_findings.py"


# With replicates >= 2, each table's rows as means with 95 % error bars (in `all`: REPORT_FILES).
rule plot_table_intervals:
    input:
        table=paths.TABLE(),
    output:
        figure=report(
            paths.INTERVALS_FIGURE(),
            caption="../report/table_intervals.rst",
            category=CATEGORY["rewards"],
            labels=lambda wildcards: {"table": table_label(wildcards.table), "figure": "means over replicates"},
        ),
    params:
        title=lambda wildcards: TABLE_TITLES[wildcards.table],
    log:
        paths.log_file("plot_table_intervals", paths.INTERVALS_FIGURE),
    wildcard_constraints:
        table="|".join(REPORT_TABLES),
    conda:
        ENV
    script:
        "../scripts/plot_table_intervals.py"


rule summary:
    input:
        tables=[paths.TABLE(table=table) for table in SUMMARY_TABLES],
        findings=paths.FINDINGS(),
    output:
        summary=paths.SUMMARY(),
    params:
        titles=[TABLE_TITLES[table] for table in SUMMARY_TABLES],
        about={"replicates": PLAN.replicates.count, "reseeded": list(PLAN.replicates.reseeded),
               "configfiles": [os.path.relpath(path, workflow.basedir) for path in workflow.configfiles]},
    log:
        paths.log_file("findings", name="summary"),
    conda:
        ENV
    script:
        "../scripts/summary.py"


# `make findings`: the claims judged over the config's replicates, on a page, a figure and in the summary, with
# each table's means and intervals (REPORT_FILES adds their figures when replicates >= 2), and every reward
# build's agreement with gold in every replicate (results/reward_models.csv: reward_unbiased is built here only).
rule findings_report:
    input:
        paths.FINDINGS(),
        paths.SUMMARY(),
        paths.FINDINGS_PAGE(),
        paths.FINDINGS_FIGURE(),
        paths.REWARD_BUILDS(),
        REPORT_FILES,
