from pathlib import Path

from rrhf.evaluate import evaluate_best_of_n

evaluate_best_of_n(snakemake.params.policy, snakemake.input.test_data, snakemake.params.reward_model,
                   str(Path(snakemake.output.metrics).parent), snakemake.params.n, snakemake.params.sampling,
                   snakemake.params.scoring, snakemake.params.limit, snakemake.params.selection_seed,
                   device=snakemake.params.device,
                   dtype=snakemake.params.dtype, dataset_source=snakemake.params.dataset_source,
                   log_path=snakemake.log[0])
