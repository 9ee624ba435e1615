from rrhf.rewards import score_provided

score_provided(snakemake.input.data, snakemake.params.reward_model, snakemake.output.rewards,
               snakemake.params.limit, snakemake.params.selection_seed, snakemake.params.batch_size,
               snakemake.params.max_length, device=snakemake.params.device,
               dtype=snakemake.params.dtype, shard=snakemake.params.shard,
               prompt_sharing=snakemake.params.prompt_sharing,
               log_path=snakemake.log[0])
