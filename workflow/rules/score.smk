# Scoring stage: rewards for sampled and provided responses, and the training
# set of each setting, results/scored/{policy}/{setting}.parquet.

rule score_samples:
    input:
        samples="results/samples/{policy}/{sampler}.parquet",
        reward_model=model_input(REWARD_MODEL),
    output:
        rewards="results/rewards/{policy}/{sampler}.parquet",
    params:
        reward_model=lambda wildcards: model_path(REWARD_MODEL),
        batch_size=config["scoring"]["batch_size"],
        max_length=config["scoring"]["max_length"],
        device=config["device"],
    log:
        "logs/score_samples/{policy}_{sampler}.log",
    benchmark:
        "benchmarks/score_samples/{policy}_{sampler}.tsv"
    resources:
        **rule_resources("score_samples"),
    conda:
        ENV
    script:
        "../scripts/score_samples.py"


rule score_provided:
    input:
        data=dataset_file(config["data"]["dataset"], "train"),
        reward_model=model_input(REWARD_MODEL),
    output:
        rewards="results/rewards/provided.parquet",
    params:
        reward_model=lambda wildcards: model_path(REWARD_MODEL),
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        batch_size=config["scoring"]["batch_size"],
        max_length=config["scoring"]["max_length"],
        device=config["device"],
    log:
        "logs/score_provided/provided.log",
    benchmark:
        "benchmarks/score_provided/provided.tsv"
    resources:
        **rule_resources("score_provided"),
    conda:
        ENV
    script:
        "../scripts/score_provided.py"


rule assemble_training_set:
    input:
        unpack(setting_parts),
    output:
        scored="results/scored/{policy}/{setting}.parquet",
    log:
        "logs/assemble_training_set/{policy}_{setting}.log",
    wildcard_constraints:
        setting=names_pattern(own_training_sets()),
    conda:
        ENV
    script:
        "../scripts/assemble_training_set.py"
