# Sampling stage: K responses per training prompt from each policy.


rule sample_responses:
    input:
        data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: model_input(wildcards.policy),
    output:
        samples="results/samples/{policy}/{sampler}.parquet",
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
    log:
        "logs/sample_responses/{policy}_{sampler}.log",
    benchmark:
        "benchmarks/sample_responses/{policy}_{sampler}.tsv"
    resources:
        **rule_resources("sample_responses"),
    conda:
        ENV
    script:
        "../scripts/sample_responses.py"
