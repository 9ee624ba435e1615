from rrhf.models.tiny import build_tokenizer

build_tokenizer(snakemake.input.data, snakemake.output.model, snakemake.params.build, log_path=snakemake.log[0])
