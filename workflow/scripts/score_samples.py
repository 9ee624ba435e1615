from rrhf.scoring.rewards import score_samples

score_samples(snakemake.input.samples, snakemake.params.reward_model, snakemake.output.rewards,
              snakemake.params.scoring, device=snakemake.params.device, dtype=snakemake.params.dtype,
              log_path=snakemake.log[0])
