from rrhf.evaluation.reward_agreement import evaluate_reward_model

evaluate_reward_model(snakemake.params.reward_model, dict(zip(snakemake.params.names, snakemake.input.scored)),
                      snakemake.output.metrics, log_path=snakemake.log[0])
