from rrhf.scoring.training_sets import assemble_training_set

assemble_training_set(snakemake.input.get("sampled"), snakemake.input.get("provided"), snakemake.output.scored,
                      snakemake.wildcards.setting, log_path=snakemake.log[0])
