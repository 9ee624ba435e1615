from rrhf.training.launch import run_job

run_job(snakemake, "rrhf.studies.preference_methods.trainer:train_preference_method",
        policy=snakemake.params.policy,
        examples_path=snakemake.input.examples, reference_path=snakemake.input.get("reference"),
        method=snakemake.params.method["method"], hyper=snakemake.params.method["hyper"], rrhf=snakemake.params.rrhf,
        precision=snakemake.params.precision)
