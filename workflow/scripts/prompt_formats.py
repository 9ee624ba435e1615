from pathlib import Path

from rrhf.report.prompt_format_table import compare_prompt_formats

compare_prompt_formats([str(Path(snakemake.input.raw).parent), str(Path(snakemake.input.own).parent)],
                       snakemake.output.table, snakemake.params.max_new_tokens, log_path=snakemake.log[0])
