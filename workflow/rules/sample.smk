# Sampling stage: K responses per training prompt from each policy. With
# `shards: N` each (policy, sampler) is N jobs over disjoint prompt shards,
# gathered by gather_shards (score.smk).


rule sample_responses:
    input:
        data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: model_input(wildcards.policy),
    output:
        samples=sharded("results/samples/{policy}/{sampler}.parquet"),
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        sampler_params=lambda wildcards: {
            **config["sampling"]["samplers"][wildcards.sampler],
            "seed": config["sampling"]["seed"],
            "batch_size": config["sampling"]["batch_size"],
        },
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
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
