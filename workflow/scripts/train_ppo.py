from rrhf.launch import run_trainer

run_trainer(
    "train_ppo",
    dict(policy=snakemake.params.policy, reward_model=snakemake.params.reward_model,
         train_data=snakemake.input.train_data, output_dir=snakemake.output.model, ppo=snakemake.params.ppo,
         training=snakemake.params.training, limit=snakemake.params.limit,
         selection_seed=snakemake.params.selection_seed, dataset_source=snakemake.params.dataset_source,
         dtype=snakemake.params.dtype,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         log_path=snakemake.log[0]),
)
