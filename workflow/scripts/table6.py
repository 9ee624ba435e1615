from rrhf.tables import table6

table6(snakemake.params.rows, list(snakemake.input.metrics), list(snakemake.input.scored), snakemake.output.table,
       log_path=snakemake.log[0])
