from rrhf.training.launch import run_job

run_job(snakemake, "train_reward_model", init_model=snakemake.params.init, train_data=snakemake.input.data,
        test_data=snakemake.input.test_data, build=snakemake.params.build, precision=snakemake.params.precision,
        on_policy_data=snakemake.input.on_policy[0] if snakemake.input.on_policy else None)
