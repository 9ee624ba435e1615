from rrhf.report.figures import plot_training_rewards

plot_training_rewards(snakemake.params.rows, snakemake.params.title, snakemake.output.figure, log_path=snakemake.log[0])
