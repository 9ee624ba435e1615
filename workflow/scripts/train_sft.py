from rrhf.training.launch import run_job

run_job(snakemake, "train_sft", init_model=snakemake.params.init, train_data=snakemake.input.data,
        build=snakemake.params.build, precision=snakemake.params.precision)
