from rrhf.launch import run_trainer

run_trainer(
    "train_rrhf",
    dict(policy=snakemake.params.policy, scored=snakemake.input.scored, output_dir=snakemake.output.model,
         training=snakemake.params.training, rank_weight=snakemake.params.rank_weight,
         length_penalty=snakemake.params.length_penalty, ft_reduction=snakemake.params.ft_reduction,
         max_tokens_per_forward=snakemake.params.max_tokens_per_forward,
         prompt_sharing=snakemake.params.prompt_sharing,
         reward_model=snakemake.params.reward_model, reward_during_training=snakemake.params.reward_during_training,
         dataset_source=snakemake.params.dataset_source, dtype=snakemake.params.dtype,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         log_path=snakemake.log[0]),
    num_processes=snakemake.resources.gpu,
    accelerate_config=snakemake.params.accelerate_config,
)
