from rrhf.training.launch import run_job

run_job(snakemake, "train_online_rrhf", policy=snakemake.params.policy, reward_model=snakemake.params.reward_model,
        train_data=snakemake.input.train_data, rrhf=snakemake.params.rrhf, online=snakemake.params.online,
        sampling=snakemake.params.sampling, scoring=snakemake.params.scoring, prompts=snakemake.params.prompts,
        precision=snakemake.params.precision, provided=snakemake.input.get("provided"))
