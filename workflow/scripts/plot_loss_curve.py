from rrhf.report.figures import plot_training_curves

plot_training_curves(snakemake.input.model, snakemake.params.title, snakemake.output.figure, log_path=snakemake.log[0])
