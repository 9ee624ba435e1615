from rrhf.studies.findings.interval_figures import plot_findings

plot_findings(snakemake.input.findings, snakemake.params.title, snakemake.output.figure, log_path=snakemake.log[0])
