from rrhf.report.figures import plot_evaluation_rewards

plot_evaluation_rewards(snakemake.params.rows, snakemake.params.title, snakemake.output.figure,
                        log_path=snakemake.log[0])
