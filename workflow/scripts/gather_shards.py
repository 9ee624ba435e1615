from rrhf.io import gather_parquet

gather_parquet(list(snakemake.input.shards), snakemake.output.gathered, ["prompt_id", "response_index"],
               log_path=snakemake.log[0])
