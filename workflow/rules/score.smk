# Scoring stage: rewards for sampled and provided responses, and the training set of each setting (IP-{n}
# included), results/scored/{policy}/{setting}.parquet.

rule score_samples:
    input:
        samples=sharded(paths.SAMPLES()),
        reward_model=reward_model_input,
    output:
        rewards=sharded(paths.REWARDS()),
    params:
        reward_model=reward_model_source,
        scoring=config["scoring"],
        **INFERENCE,
    log:
        sharded(paths.log_file("score_samples", paths.REWARDS)),
    benchmark:
        sharded(paths.benchmark_file("score_samples", paths.REWARDS))
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
        samples=sharded(paths.ITERATED_SAMPLES()),
        reward_model=reward_model_input,
    output:
        rewards=sharded(paths.ITERATED_REWARDS()),
    log:
        sharded(paths.log_file("score_samples", paths.ITERATED_REWARDS)),
    benchmark:
        sharded(paths.benchmark_file("score_samples", paths.ITERATED_REWARDS))
    wildcard_constraints:
        iteration=LATER_ITERATION_PATTERN,

rule score_provided:
    input:
        data=TRAIN_DATA,
        reward_model=reward_model_input,
    output:
        rewards=sharded(paths.PROVIDED_REWARDS()),
    params:
        reward_model=reward_model_source,
        prompts=PLAN.prompt_subset("train"),
        scoring=config["scoring"],
        **INFERENCE,
        shard=shard_of,
    log:
        sharded(paths.log_file("score_provided", paths.PROVIDED_REWARDS, "provided")),
    benchmark:
        sharded(paths.benchmark_file("score_provided", paths.PROVIDED_REWARDS, "provided"))
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
        scored=paths.TRAINING_SET(),
    log:
        paths.log_file("assemble_training_set", paths.TRAINING_SET),
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
            shards=[paths.SHARD(shard=shard) for shard in range(PLAN.shards)],
        output:
            gathered=paths.GATHERED(),
        log:
            paths.log_file("gather_shards", paths.GATHERED),
        wildcard_constraints:
            stage="samples|rewards",
            path=rf"[^/]+/(?:{LATER_ITERATION_PATTERN}/)?[^/]+|provided",
        conda:
            ENV
        script:
            "../scripts/gather_shards.py"
