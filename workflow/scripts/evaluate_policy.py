from pathlib import Path

from rrhf.evaluate import evaluate_policy

evaluate_policy(snakemake.params.policy, snakemake.input.test_data, snakemake.params.reward_model,
                snakemake.params.evaluation_model, str(Path(snakemake.output.metrics).parent),
                snakemake.params.decoding, snakemake.params.scoring, snakemake.params.limit,
                snakemake.params.selection_seed, device=snakemake.params.device, dtype=snakemake.params.dtype,
                dataset_source=snakemake.params.dataset_source, log_path=snakemake.log[0])
