from rrhf.studies.fine_grained.reward_models import train_segment_reward_model

train_segment_reward_model(snakemake.wildcards.kind, snakemake.params.init, snakemake.input.feedback,
                           snakemake.output.model, snakemake.params.reward_models, snakemake.params.held_out,
                           snakemake.params.precision, log_path=snakemake.log[0])
