from rrhf.rewards import score_samples

score_samples(snakemake.input.samples, snakemake.params.reward_model, snakemake.output.rewards,
              snakemake.params.batch_size, snakemake.params.max_length, device=snakemake.params.device,
              dtype=snakemake.params.dtype, prompt_sharing=snakemake.params.prompt_sharing,
              log_path=snakemake.log[0])
