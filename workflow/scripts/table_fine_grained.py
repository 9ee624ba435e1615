from rrhf.studies.fine_grained.table import table_fine_grained

table_fine_grained(snakemake.params.rows, list(snakemake.input.metrics), list(snakemake.input.fine_grained),
                   snakemake.output.table, log_path=snakemake.log[0], replicates=snakemake.params.replicates)
