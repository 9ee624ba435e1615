from rrhf.training.launch import run_job

run_job(snakemake, "train_rrhf", policy=snakemake.params.policy, scored=snakemake.input.scored,
        rrhf=snakemake.params.rrhf, precision=snakemake.params.precision, reward_model=snakemake.params.reward_model,
        scoring=snakemake.params.scoring)
