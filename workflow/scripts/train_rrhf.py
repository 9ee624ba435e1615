from rrhf.train_rrhf import train_rrhf

train_rrhf(snakemake.params.policy, snakemake.input.scored, snakemake.output.model, snakemake.params.training,
           rank_weight=snakemake.params.rank_weight, length_penalty=snakemake.params.length_penalty,
           ft_reduction=snakemake.params.ft_reduction,
           max_tokens_per_forward=snakemake.params.max_tokens_per_forward, log_path=snakemake.log[0])
