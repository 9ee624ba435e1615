from rrhf.data.preference_pairs import prepare_dataset

prepare_dataset(snakemake.params.spec, snakemake.wildcards.split, snakemake.output.data, log_path=snakemake.log[0])
