from rrhf.data.preference_pairs import prepare_dataset

# The data block is read from the config, not from params: a changed prompt count re-runs nothing here.
prepare_dataset(snakemake.params.spec, snakemake.wildcards.split, snakemake.output.data, data=snakemake.config["data"],
                name=snakemake.wildcards.dataset, log_path=snakemake.log[0])
