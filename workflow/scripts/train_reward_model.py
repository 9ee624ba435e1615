from rrhf.training.launch import run_trainer

run_trainer(
    "train_reward_model",
    dict(init_model=snakemake.params.init, train_data=snakemake.input.data, test_data=snakemake.input.test_data,
         output_dir=snakemake.output.model, build=snakemake.params.build, precision=snakemake.params.precision,
         on_policy_data=snakemake.input.on_policy[0] if snakemake.input.on_policy else None,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         tracking=snakemake.config["tracking"], log_path=snakemake.log[0]),
    num_processes=snakemake.resources.gpu,
    accelerate_config=snakemake.params.accelerate_config,
)
