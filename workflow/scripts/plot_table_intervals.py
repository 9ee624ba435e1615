from rrhf.studies.findings.interval_figures import plot_table_intervals

plot_table_intervals(snakemake.input.table, snakemake.params.title, snakemake.output.figure,
                     log_path=snakemake.log[0])
