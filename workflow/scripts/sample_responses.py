from rrhf.sampling.generation import sample_responses

sample_responses(snakemake.params.policy, snakemake.input.data, snakemake.output.samples, snakemake.wildcards.sampler,
                 snakemake.params.sampling, snakemake.params.prompts, device=snakemake.params.device,
                 dtype=snakemake.params.dtype, shard=snakemake.params.shard, log_path=snakemake.log[0])
