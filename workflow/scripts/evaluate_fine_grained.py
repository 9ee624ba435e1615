from rrhf.studies.fine_grained.evaluation import evaluate_fine_grained

evaluate_fine_grained(snakemake.input.generations, snakemake.params.reward_models, snakemake.params.marker_position,
                      snakemake.params.max_length, snakemake.output.segments, snakemake.output.metrics,
                      device=snakemake.params.device, log_path=snakemake.log[0])
