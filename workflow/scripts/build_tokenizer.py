from rrhf.tiny import build_tokenizer

build_tokenizer(snakemake.input.data, snakemake.output.model, snakemake.params.vocab_size, log_path=snakemake.log[0])
