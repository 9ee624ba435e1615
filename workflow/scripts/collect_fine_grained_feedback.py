from rrhf.studies.fine_grained.feedback_collection import collect_feedback

collect_feedback(snakemake.params.policy, snakemake.input.train_data, snakemake.output.feedback,
                 snakemake.output.completeness, snakemake.params.feedback, snakemake.params.excluded_prompts,
                 max_prompt_tokens=snakemake.params.max_prompt_tokens, device=snakemake.params.device,
                 dtype=snakemake.params.dtype, log_path=snakemake.log[0])
