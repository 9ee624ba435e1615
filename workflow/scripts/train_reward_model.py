from rrhf.train_reward import train_reward_model

train_reward_model(snakemake.params.init, snakemake.input.data, snakemake.input.test_data, snakemake.output.model,
                   snakemake.params.training, log_path=snakemake.log[0])
