# Evaluation stage: one generation per test prompt, cut at the next turn,
# scored by the reward model and the evaluation LM (perplexity).


rule evaluate_policy:
    input:
        test_data=dataset_file(config["data"]["dataset"], "test"),
        policy=evaluated_model_input,
        reward_model=model_input(REWARD_MODEL),
        evaluation_model=model_input(EVALUATION_MODEL),
    output:
        generations="results/eval/{policy}/{setting}/generations.parquet",
        metrics="results/eval/{policy}/{setting}/metrics.json",
    params:
        policy=evaluated_model,
        reward_model=lambda wildcards: model_path(REWARD_MODEL),
        evaluation_model=lambda wildcards: model_path(EVALUATION_MODEL),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        limit=config["data"]["test_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dataset_source=DATASET_SOURCE,
    log:
        "logs/evaluate_policy/{policy}_{setting}.log",
    benchmark:
        "benchmarks/evaluate_policy/{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=names_pattern([*SETTINGS, "none"]),
    threads: rule_threads("evaluate_policy")
    resources:
        **rule_resources("evaluate_policy"),
    conda:
        ENV
    script:
        "../scripts/evaluate_policy.py"


rule evaluate_provided:
    input:
        test_data=dataset_file(config["data"]["dataset"], "test"),
        reward_model=model_input(REWARD_MODEL),
        evaluation_model=model_input(EVALUATION_MODEL),
    output:
        generations="results/eval/dataset/{source}/generations.parquet",
        metrics="results/eval/dataset/{source}/metrics.json",
    params:
        reward_model=lambda wildcards: model_path(REWARD_MODEL),
        evaluation_model=lambda wildcards: model_path(EVALUATION_MODEL),
        scoring=config["scoring"],
        limit=config["data"]["test_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dataset_source=DATASET_SOURCE,
    log:
        "logs/evaluate_provided/{source}.log",
    benchmark:
        "benchmarks/evaluate_provided/{source}.tsv"
    wildcard_constraints:
        source="chosen|rejected",
    threads: rule_threads("evaluate_provided")
    resources:
        **rule_resources("evaluate_provided"),
    conda:
        ENV
    script:
        "../scripts/evaluate_provided.py"


rule evaluate_reward_model:
    input:
        reward_model=model_input(REWARD_MODEL),
        scored=list(agreement_training_sets().values()),
    output:
        metrics="results/eval/reward_model/metrics.json",
    params:
        reward_model=lambda wildcards: model_path(REWARD_MODEL),
        names=list(agreement_training_sets()),
        dataset_source=DATASET_SOURCE,
    log:
        "logs/evaluate_reward_model/reward_model.log",
    conda:
        ENV
    script:
        "../scripts/evaluate_reward_model.py"
