from rrhf.training.launch import run_job

run_job(snakemake, "pretrain_lm", tokenizer_dir=snakemake.params.tokenizer, train_data=snakemake.input.data,
        build=snakemake.params.build, precision=snakemake.params.precision)
