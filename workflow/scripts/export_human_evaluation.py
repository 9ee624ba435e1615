from rrhf.studies.human_evaluation.pairs import export_human_evaluation

export_human_evaluation(snakemake.params.comparisons, snakemake.params.study, snakemake.output.key,
                        list(snakemake.output.pages), list(snakemake.output.sheets), log_path=snakemake.log[0])
