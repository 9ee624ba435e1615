from rrhf.studies.preference_methods.reference_logprobs import compute_reference_logprobs

compute_reference_logprobs(snakemake.params.reference, snakemake.input.examples, snakemake.output.reference,
                           snakemake.params.settings, snakemake.params.device, log_path=snakemake.log[0])
