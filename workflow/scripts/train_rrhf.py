from rrhf.training.launch import run_trainer

run_trainer(
    "train_rrhf",
    dict(policy=snakemake.params.policy, scored=snakemake.input.scored, output_dir=snakemake.output.model,
         rrhf=snakemake.params.rrhf, precision=snakemake.params.precision, reward_model=snakemake.params.reward_model,
         scoring=snakemake.params.scoring,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         tracking=snakemake.config["tracking"], log_path=snakemake.log[0]),
    num_processes=snakemake.resources.gpu,
    accelerate_config=snakemake.params.accelerate_config,
)
