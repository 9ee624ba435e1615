from rrhf.studies.overoptimisation.curves import write_overoptimisation

write_overoptimisation(snakemake.input.samples, snakemake.params.best_of, snakemake.params.curves,
                       snakemake.params.points, snakemake.output.table, log_path=snakemake.log[0])
