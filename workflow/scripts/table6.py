from rrhf.report.tables import table6

table6(snakemake.params.rows, list(snakemake.input.metrics), snakemake.params.scored, snakemake.output.table,
       log_path=snakemake.log[0], replicates=snakemake.params.replicates)
