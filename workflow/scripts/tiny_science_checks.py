from pathlib import Path

from rrhf.report.science_checks import write_science_checks

write_science_checks(str(Path(snakemake.output.checks).parents[1]), snakemake.params.policy, snakemake.output.checks,
                     log_path=snakemake.log[0])
