from rrhf.report.findings import findings

findings(snakemake.params.claims, snakemake.output.findings, log_path=snakemake.log[0])
