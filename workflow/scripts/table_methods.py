from rrhf.studies.preference_methods.table import table_methods

table_methods(snakemake.params.rows, list(snakemake.input.metrics), snakemake.output.table, log_path=snakemake.log[0],
              replicates=snakemake.params.replicates)
