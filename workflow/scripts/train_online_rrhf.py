from rrhf.launch import run_trainer

run_trainer(
    "train_online_rrhf",
    dict(policy=snakemake.params.policy, reward_model=snakemake.params.reward_model,
         train_data=snakemake.input.train_data, output_dir=snakemake.output.model, online=snakemake.params.online,
         training=snakemake.params.training, provided=snakemake.input.get("provided"),
         rank_weight=snakemake.params.rank_weight, length_penalty=snakemake.params.length_penalty,
         ft_reduction=snakemake.params.ft_reduction, max_tokens_per_forward=snakemake.params.max_tokens_per_forward,
         prompt_sharing=snakemake.params.prompt_sharing,
         scoring=snakemake.params.scoring, limit=snakemake.params.limit,
         selection_seed=snakemake.params.selection_seed, dataset_source=snakemake.params.dataset_source,
         dtype=snakemake.params.dtype,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         log_path=snakemake.log[0]),
)
