from rrhf.train_ppo import train_ppo

train_ppo(snakemake.params.policy, snakemake.params.reward_model, snakemake.input.train_data,
          snakemake.output.model, snakemake.params.ppo, snakemake.params.training, snakemake.params.limit,
          snakemake.params.selection_seed, dataset_source=snakemake.params.dataset_source, dtype=snakemake.params.dtype,
          log_path=snakemake.log[0])
