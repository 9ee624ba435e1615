from rrhf.train_lm import pretrain_lm

pretrain_lm(snakemake.params.tokenizer, snakemake.input.data, snakemake.output.model,
            snakemake.params.architecture, snakemake.params.training, log_path=snakemake.log[0])
