from rrhf.pair_accuracy import pair_accuracy

pair_accuracy(snakemake.input.test_data, snakemake.params.scorer, snakemake.params.model, snakemake.output.accuracy,
              snakemake.params.batch_size, snakemake.params.max_length, snakemake.params.length_penalty,
              device=snakemake.params.device, dtype=snakemake.params.dtype,
              prompt_sharing=snakemake.params.prompt_sharing, log_path=snakemake.log[0])
