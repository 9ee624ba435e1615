from rrhf.training.launch import run_trainer

run_trainer(
    "train_ppo",
    dict(policy=snakemake.params.policy, reward_model=snakemake.params.reward_model,
         train_data=snakemake.input.train_data, output_dir=snakemake.output.model, ppo=snakemake.params.ppo,
         scoring=snakemake.params.scoring, prompts=snakemake.params.prompts, precision=snakemake.params.precision,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         tracking=snakemake.config["tracking"], log_path=snakemake.log[0],
         # fine-grained PPO (rule train_fine_grained_ppo): a reward per segment
         fine_grained=snakemake.params.get("fine_grained")),
)
