from pathlib import Path

from rrhf.evaluation.generations import evaluate_best_of_n

evaluate_best_of_n(snakemake.params.policy, snakemake.input.test_data, snakemake.params.reward_model,
                   str(Path(snakemake.output.metrics).parent), snakemake.params.n, snakemake.params.best_of_n,
                   snakemake.params.scoring, snakemake.params.prompts, device=snakemake.params.device,
                   dtype=snakemake.params.dtype, log_path=snakemake.log[0])
