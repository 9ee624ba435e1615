from rrhf.scoring.rewards import score_provided

score_provided(snakemake.input.data, snakemake.params.reward_model, snakemake.output.rewards,
               snakemake.params.prompts, snakemake.params.scoring, device=snakemake.params.device,
               dtype=snakemake.params.dtype, shard=snakemake.params.shard, log_path=snakemake.log[0])
