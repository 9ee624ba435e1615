from rrhf.launch import run_trainer

run_trainer(
    "train_rrhf",
    dict(policy=snakemake.params.policy, scored=snakemake.input.scored, output_dir=snakemake.output.model,
         training=snakemake.params.training, rank_weight=snakemake.params.rank_weight,
         length_penalty=snakemake.params.length_penalty, ft_reduction=snakemake.params.ft_reduction,
         max_tokens_per_forward=snakemake.params.max_tokens_per_forward, checkpoint=snakemake.params.checkpoint,
         log_path=snakemake.log[0]),
    num_processes=snakemake.resources.gpu,
    accelerate_config=snakemake.params.accelerate_config,
)
