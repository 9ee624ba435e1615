from rrhf.studies.overoptimisation.curves import plot_overoptimisation

plot_overoptimisation(snakemake.input.table, snakemake.output.figure, log_path=snakemake.log[0])
