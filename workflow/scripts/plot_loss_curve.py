from rrhf.tables import plot_loss_curve

plot_loss_curve(snakemake.input.model, snakemake.params.title, snakemake.output.figure, log_path=snakemake.log[0])
