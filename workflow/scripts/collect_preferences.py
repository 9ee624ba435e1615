from rrhf.sampling.preference_collection import collect_preferences

collect_preferences(snakemake.params.policies, snakemake.input.data, snakemake.output.pairs,
                    snakemake.params.on_policy, snakemake.params.excluded_prompts,
                    device=snakemake.params.device, dtype=snakemake.params.dtype,
                    key=f"models.{snakemake.wildcards.name}.build.on_policy", log_path=snakemake.log[0])
