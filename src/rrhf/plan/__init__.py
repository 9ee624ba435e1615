"""The plan of a run, read from its config: typed config blocks, the setting grammar, table rows and every
check made before the first job. Imports neither torch nor transformers, so Snakemake starts quickly."""
