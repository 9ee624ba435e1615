from pathlib import Path

from rrhf.evaluate import evaluate_provided

evaluate_provided(snakemake.input.test_data, snakemake.wildcards.source, snakemake.params.reward_model,
                  snakemake.params.evaluation_model, str(Path(snakemake.output.metrics).parent),
                  snakemake.params.scoring, snakemake.params.limit, snakemake.params.selection_seed,
                  device=snakemake.params.device,
                  dtype=snakemake.params.dtype, dataset_source=snakemake.params.dataset_source,
                  log_path=snakemake.log[0])
