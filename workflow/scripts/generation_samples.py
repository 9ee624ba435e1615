from rrhf.report.pages import generation_samples

generation_samples(snakemake.params.rows, snakemake.params.title, snakemake.params.examples, snakemake.output.page,
                   log_path=snakemake.log[0])
