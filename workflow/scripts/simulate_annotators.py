from rrhf.studies.human_evaluation.judgments import simulate_annotators

simulate_annotators(snakemake.input.key, snakemake.params.annotators, snakemake.params.seed,
                    list(snakemake.output.judgments), log_path=snakemake.log[0])
