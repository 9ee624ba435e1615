from pathlib import Path

from rrhf.evaluation.reward_builds import write_reward_models

write_reward_models([str(Path(folder) / "metrics.json") for folder in snakemake.input.models],
                    snakemake.params.replicates, snakemake.params.names, snakemake.output.table,
                    log_path=snakemake.log[0])
