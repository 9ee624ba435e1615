# Sampling stage: K responses per training prompt from each policy (and, for IP-{n}, from the model
# IP-(n-1) trained). With `shards: N` each (policy, sampler) is N jobs over disjoint prompt shards,
# gathered by gather_shards (score.smk).


rule sample_responses:
    input:
        data=TRAIN_DATA,
        policy=policy_input,
    output:
        samples=sharded(paths.SAMPLES()),
    params:
        policy=policy_path,
        sampling=lambda wildcards: PLAN.sampling_for(wildcards.sampler, wildcards.replicate),
        prompts=PLAN.prompt_subset("train"),
        **INFERENCE,
        shard=shard_of,
    log:
        sharded(paths.log_file("sample_responses", paths.SAMPLES)),
    benchmark:
        sharded(paths.benchmark_file("sample_responses", paths.SAMPLES))
    threads: threads_of("sample_responses")
    resources:
        **resources_of("sample_responses"),
    conda:
        ENV
    script:
        "../scripts/sample_responses.py"


# IP-{n}, n >= 2: the same sampling from the model IP-(n-1) trained. Snakemake follows the recursion down to
# IP-1 (resampling.setting) by itself, so any n works.
use rule sample_responses as sample_iterated_responses with:
    input:
        data=TRAIN_DATA,
        policy=lambda wildcards: starting_model_input(wildcards, wildcards.iteration),
    output:
        samples=sharded(paths.ITERATED_SAMPLES()),
    params:
        policy=lambda wildcards: starting_model(wildcards, wildcards.iteration),
        sampling=lambda wildcards: PLAN.sampling_for(wildcards.sampler, wildcards.replicate),
        prompts=PLAN.prompt_subset("train"),
        **INFERENCE,
        shard=shard_of,
    log:
        sharded(paths.log_file("sample_responses", paths.ITERATED_SAMPLES)),
    benchmark:
        sharded(paths.benchmark_file("sample_responses", paths.ITERATED_SAMPLES))
    wildcard_constraints:
        iteration=LATER_ITERATION_PATTERN,
