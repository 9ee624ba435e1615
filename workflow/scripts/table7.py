from rrhf.report.tables import table7

table7(snakemake.params.rows, list(snakemake.input.metrics), snakemake.output.table, log_path=snakemake.log[0],
       replicates=snakemake.params.replicates)
