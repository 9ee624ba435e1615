from rrhf.report.tables import table2

table2(snakemake.params.rows, list(snakemake.input.metrics), snakemake.output.table, log_path=snakemake.log[0],
       replicates=snakemake.params.replicates)
