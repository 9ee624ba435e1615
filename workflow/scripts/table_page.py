from rrhf.report.pages import table_page

table_page(snakemake.input.table, snakemake.params.title, snakemake.params.note, snakemake.output.page,
           log_path=snakemake.log[0])
