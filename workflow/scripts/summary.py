from rrhf.report.summary import write_summary

write_summary(dict(zip(snakemake.params.titles, snakemake.input.tables, strict=True)), snakemake.input.findings,
              snakemake.params.about, snakemake.output.summary, log_path=snakemake.log[0])
