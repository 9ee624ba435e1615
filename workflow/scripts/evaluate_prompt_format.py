from pathlib import Path

from rrhf.evaluation.generations import evaluate_policy

evaluate_policy(snakemake.params.policy, snakemake.input.test_data, snakemake.params.reward_model,
                snakemake.params.evaluation_model, str(Path(snakemake.output.metrics).parent),
                snakemake.params.decoding, snakemake.params.scoring, snakemake.params.prompts,
                device=snakemake.params.device, dtype=snakemake.params.dtype, log_path=snakemake.log[0],
                prompt_format=snakemake.wildcards.format)
