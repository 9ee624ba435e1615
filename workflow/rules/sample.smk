# Sampling stage: K responses per training prompt from each policy (and, for IP-{n}, from the model
# IP-(n-1) trained). With `shards: N` each (policy, sampler) is N jobs over disjoint prompt shards,
# gathered by gather_shards (score.smk).


rule sample_responses:
    input:
        data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: model_input(wildcards.policy),
    output:
        samples=sharded("results/samples/{policy}/{sampler}.parquet"),
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        sampler_params=lambda wildcards: sampler_params(wildcards.sampler),
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
        shard=shard_of,
    log:
        sharded("logs/sample_responses/{policy}_{sampler}.log"),
    benchmark:
        sharded("benchmarks/sample_responses/{policy}_{sampler}.tsv")
    threads: rule_threads("sample_responses")
    resources:
        **rule_resources("sample_responses"),
    conda:
        ENV
    script:
        "../scripts/sample_responses.py"


# IP-{n}, n >= 2: the same sampling from the model IP-(n-1) trained. Snakemake follows the recursion down to
# IP-1 (resampling.setting) by itself, so any n works.
use rule sample_responses as sample_iterated_responses with:
    input:
        data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: starting_model_input(wildcards.policy, wildcards.iteration),
    output:
        samples=sharded("results/samples/{policy}/{iteration}/{sampler}.parquet"),
    params:
        policy=lambda wildcards: starting_model(wildcards.policy, wildcards.iteration),
        sampler_params=lambda wildcards: sampler_params(wildcards.sampler),
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
        shard=shard_of,
    log:
        sharded("logs/sample_responses/{policy}_{iteration}_{sampler}.log"),
    benchmark:
        sharded("benchmarks/sample_responses/{policy}_{iteration}_{sampler}.tsv")
    wildcard_constraints:
        iteration=LATER_ITERATION_PATTERN,
