from rrhf.studies.preference_methods.examples import write_method_examples

write_method_examples(snakemake.input.scored, snakemake.wildcards.data, snakemake.params.pairs,
                      snakemake.params.kto_threshold, snakemake.output.examples, log_path=snakemake.log[0])
