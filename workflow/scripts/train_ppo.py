from rrhf.training.launch import run_job

# PPO, and fine-grained PPO (rule train_fine_grained_ppo) with its reward per segment
run_job(snakemake, "train_ppo", policy=snakemake.params.policy, reward_model=snakemake.params.reward_model,
        train_data=snakemake.input.train_data, ppo=snakemake.params.ppo, scoring=snakemake.params.scoring,
        prompts=snakemake.params.prompts, precision=snakemake.params.precision,
        fine_grained=snakemake.params.get("fine_grained"))
