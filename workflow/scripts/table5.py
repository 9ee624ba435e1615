from rrhf.report.tables import table5

table5(snakemake.params.rows, list(snakemake.input.accuracy), snakemake.output.table, log_path=snakemake.log[0],
       replicates=snakemake.params.replicates)
