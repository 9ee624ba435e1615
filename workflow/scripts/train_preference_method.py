from rrhf.training.launch import run_trainer

run_trainer(
    "train_preference_method",
    dict(policy=snakemake.params.policy, examples_path=snakemake.input.examples,
         reference_path=snakemake.input.get("reference"), output_dir=snakemake.output.model,
         method=snakemake.params.method["method"], hyper=snakemake.params.method["hyper"],
         rrhf=snakemake.params.rrhf, precision=snakemake.params.precision,
         checkpoint=dict(snakemake.config["checkpoints"], job=snakemake.output.model),
         tracking=snakemake.config["tracking"], log_path=snakemake.log[0]),
    num_processes=snakemake.resources.gpu,
    accelerate_config=snakemake.params.accelerate_config,
)
