from rrhf.train_online import train_online_rrhf

train_online_rrhf(snakemake.params.policy, snakemake.params.reward_model, snakemake.input.train_data,
                  snakemake.output.model, snakemake.params.online, snakemake.params.training,
                  provided=snakemake.input.get("provided"), rank_weight=snakemake.params.rank_weight,
                  length_penalty=snakemake.params.length_penalty, ft_reduction=snakemake.params.ft_reduction,
                  max_tokens_per_forward=snakemake.params.max_tokens_per_forward, scoring=snakemake.params.scoring,
                  limit=snakemake.params.limit, selection_seed=snakemake.params.selection_seed,
                  dataset_source=snakemake.params.dataset_source, dtype=snakemake.params.dtype,
                  log_path=snakemake.log[0])
