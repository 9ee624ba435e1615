from rrhf.training.launch import run_trainer

run_trainer(
    "train_online_rrhf",
    dict(policy=snakemake.params.policy, reward_model=snakemake.params.reward_model,
         train_data=snakemake.input.train_data, output_dir=snakemake.output.model, rrhf=snakemake.params.rrhf,
         online=snakemake.params.online, sampling=snakemake.params.sampling, scoring=snakemake.params.scoring,
         prompts=snakemake.params.prompts, precision=snakemake.params.precision,
         provided=snakemake.input.get("provided"),
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         tracking=snakemake.config["tracking"], log_path=snakemake.log[0]),
    num_processes=snakemake.resources.gpu,
    accelerate_config=snakemake.params.accelerate_config,
)
