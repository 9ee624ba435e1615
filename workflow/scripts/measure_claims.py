from rrhf.studies.findings.verdicts import findings

findings(snakemake.params.claims, snakemake.output.findings, log_path=snakemake.log[0])
