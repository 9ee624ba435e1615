# Scoring stage: rewards for sampled and provided responses, and the training
# set of each setting (IP-{n} included), results/scored/{policy}/{setting}.parquet.

rule score_samples:
    input:
        samples=sharded("results/{replicate}samples/{policy}/{sampler}.parquet"),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        rewards=sharded("results/{replicate}rewards/{policy}/{sampler}.parquet"),
    params:
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        scoring=config["scoring"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        sharded("logs/score_samples/{replicate}{policy}_{sampler}.log"),
    benchmark:
        sharded("logs/benchmarks/score_samples/{replicate}{policy}_{sampler}.tsv")
    threads: threads_of("score_samples")
    resources:
        **resources_of("score_samples"),
    conda:
        ENV
    script:
        "../scripts/score_samples.py"


# IP-{n}'s samples (sample_iterated_responses), scored the same way.
use rule score_samples as score_iterated_samples with:
    input:
        samples=sharded("results/{replicate}samples/{policy}/{iteration}/{sampler}.parquet"),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        rewards=sharded("results/{replicate}rewards/{policy}/{iteration}/{sampler}.parquet"),
    log:
        sharded("logs/score_samples/{replicate}{policy}_{iteration}_{sampler}.log"),
    benchmark:
        sharded("logs/benchmarks/score_samples/{replicate}{policy}_{iteration}_{sampler}.tsv")
    wildcard_constraints:
        iteration=LATER_ITERATION_PATTERN,

rule score_provided:
    input:
        data=TRAIN_DATA,
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        rewards=sharded("results/{replicate}rewards/provided.parquet"),
    params:
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        prompts=PLAN.prompt_subset("train"),
        scoring=config["scoring"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
        shard=shard_of,
    log:
        sharded("logs/score_provided/{replicate}provided.log"),
    benchmark:
        sharded("logs/benchmarks/score_provided/{replicate}provided.tsv")
    threads: threads_of("score_provided")
    resources:
        **resources_of("score_provided"),
    conda:
        ENV
    script:
        "../scripts/score_provided.py"


rule assemble_training_set:
    input:
        unpack(setting_parts),
    output:
        scored="results/{replicate}scored/{policy}/{setting}.parquet",
    log:
        "logs/assemble_training_set/{replicate}{policy}_{setting}.log",
    wildcard_constraints:
        setting=f"{names_pattern(PLAN.own_training_sets())}|{LATER_ITERATION_PATTERN}",
    conda:
        ENV
    script:
        "../scripts/assemble_training_set.py"


if PLAN.shards > 1:

    localrules:
        gather_shards,

    rule gather_shards:
        input:
            shards=expand("results/{{replicate}}{{stage}}/{{path}}/shard{shard}.parquet", shard=range(PLAN.shards)),
        output:
            gathered="results/{replicate}{stage}/{path}.parquet",
        log:
            "logs/gather_shards/{replicate}{stage}/{path}.log",
        wildcard_constraints:
            stage="samples|rewards",
            path=rf"[^/]+/(?:{LATER_ITERATION_PATTERN}/)?[^/]+|provided",
        conda:
            ENV
        script:
            "../scripts/gather_shards.py"
