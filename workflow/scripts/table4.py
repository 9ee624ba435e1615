from rrhf.studies.human_evaluation.human_tables import write_table4

write_table4(snakemake.params.rows, snakemake.params.prompts, snakemake.params.seed, snakemake.output.table,
             log_path=snakemake.log[0])
