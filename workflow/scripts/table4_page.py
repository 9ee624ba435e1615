from rrhf.studies.human_evaluation.human_tables import table4_page

table4_page(snakemake.input.table, snakemake.params.title, snakemake.output.page, log_path=snakemake.log[0])
