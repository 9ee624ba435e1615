# Evaluation stage: one generation per test prompt, cut at the next turn, scored by the
# reward model and the evaluation LM (perplexity); best-of-n; Table 5's pair accuracy.


rule evaluate_policy:
    input:
        test_data=dataset_file(config["data"]["dataset"], "test"),
        policy=evaluated_model_input,
        reward_model=reward_model_input(),
        evaluation_model=model_input(EVALUATION_MODEL),
    output:
        generations="results/eval/{policy}/{setting}/generations.parquet",
        metrics="results/eval/{policy}/{setting}/metrics.json",
    params:
        policy=evaluated_model,
        reward_model=lambda wildcards: reward_model_source(),
        evaluation_model=lambda wildcards: model_path(EVALUATION_MODEL),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        limit=config["data"]["test_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
        dataset_source=DATASET_SOURCE,
    log:
        "logs/evaluate_policy/{policy}_{setting}.log",
    benchmark:
        "benchmarks/evaluate_policy/{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=EVALUATED_SETTINGS,
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
        reward_model=reward_model_input(),
        evaluation_model=model_input(EVALUATION_MODEL),
    output:
        generations="results/eval/dataset/{source}/generations.parquet",
        metrics="results/eval/dataset/{source}/metrics.json",
    params:
        reward_model=lambda wildcards: reward_model_source(),
        evaluation_model=lambda wildcards: model_path(EVALUATION_MODEL),
        scoring=config["scoring"],
        limit=config["data"]["test_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
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
        reward_model=reward_model_input(),
        scored=list(agreement_training_sets().values()),
    output:
        metrics="results/eval/reward_model/metrics.json",
    params:
        reward_model=lambda wildcards: reward_model_source(),
        names=list(agreement_training_sets()),
        dataset_source=DATASET_SOURCE,
    log:
        "logs/evaluate_reward_model/reward_model.log",
    conda:
        ENV
    script:
        "../scripts/evaluate_reward_model.py"


rule evaluate_best_of_n:
    input:
        test_data=dataset_file(config["data"]["dataset"], "test"),
        policy=lambda wildcards: model_input(wildcards.policy),
        reward_model=reward_model_input(),
    output:
        samples="results/eval/{policy}/best-of-{n}/samples.parquet",
        generations="results/eval/{policy}/best-of-{n}/generations.parquet",
        metrics="results/eval/{policy}/best-of-{n}/metrics.json",
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        reward_model=lambda wildcards: reward_model_source(),
        n=lambda wildcards: int(wildcards.n),
        sampling=config["evaluation"]["best_of_n"],
        scoring=config["scoring"],
        limit=config["data"]["test_prompts"],
        selection_seed=config["data"]["selection_seed"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
        dataset_source=DATASET_SOURCE,
    log:
        "logs/evaluate_best_of_n/{policy}_{n}.log",
    benchmark:
        "benchmarks/evaluate_best_of_n/{policy}_{n}.tsv"
    wildcard_constraints:
        n="[1-9][0-9]*",
    threads: rule_threads("evaluate_best_of_n")
    resources:
        **rule_resources("evaluate_best_of_n"),
    conda:
        ENV
    script:
        "../scripts/evaluate_best_of_n.py"


rule policy_pair_accuracy:
    input:
        test_data=dataset_file(config["data"]["dataset"], "test"),
        policy=evaluated_model_input,
    output:
        accuracy="results/eval/{policy}/{setting}/pair_accuracy.json",
    params:
        scorer="policy",
        model=evaluated_model,
        batch_size=config["scoring"]["batch_size"],
        max_length=config["scoring"]["max_length"],
        prompt_sharing=config["scoring"]["prompt_sharing"],
        length_penalty=config["rrhf"]["length_penalty"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/pair_accuracy/{policy}_{setting}.log",
    wildcard_constraints:
        setting=EVALUATED_SETTINGS,
    threads: rule_threads("pair_accuracy")
    resources:
        **rule_resources("pair_accuracy"),
    conda:
        ENV
    script:
        "../scripts/pair_accuracy.py"


rule reward_model_pair_accuracy:
    input:
        test_data=dataset_file(config["data"]["dataset"], "test"),
        reward_model=reward_model_input(),
    output:
        accuracy="results/eval/reward_model/pair_accuracy.json",
    params:
        scorer="reward_model",
        model=lambda wildcards: reward_model_source(),
        batch_size=config["scoring"]["batch_size"],
        max_length=config["scoring"]["max_length"],
        prompt_sharing=config["scoring"]["prompt_sharing"],
        length_penalty=config["rrhf"]["length_penalty"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/pair_accuracy/reward_model.log",
    threads: rule_threads("pair_accuracy")
    resources:
        **rule_resources("pair_accuracy"),
    conda:
        ENV
    script:
        "../scripts/pair_accuracy.py"
