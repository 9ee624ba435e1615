from rrhf.train_lm import train_sft

train_sft(snakemake.params.init, snakemake.input.data, snakemake.output.model, snakemake.params.training,
          max_examples=snakemake.params.max_examples, log_path=snakemake.log[0])
