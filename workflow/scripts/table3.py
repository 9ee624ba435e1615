from rrhf.studies.human_evaluation.human_tables import write_table3

write_table3(list(snakemake.input.judged), snakemake.params.comparisons, snakemake.output.table,
             log_path=snakemake.log[0])
