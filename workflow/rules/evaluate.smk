# Evaluation stage: one generation per test prompt, cut at the next turn, scored by the
# reward model and the evaluation LM (perplexity); best-of-n; Table 5's pair accuracy.


rule evaluate_policy:
    input:
        test_data=TEST_DATA,
        policy=evaluated_model_input,
        reward_model=PLAN.reward_model_input(),
        evaluation_model=PLAN.model_input(PLAN.evaluation_model),
    output:
        generations="results/eval/{policy}/{setting}/generations.parquet",
        metrics="results/eval/{policy}/{setting}/metrics.json",
    params:
        policy=evaluated_model,
        reward_model=lambda wildcards: PLAN.reward_model_source(),
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_policy/{policy}_{setting}.log",
    benchmark:
        "logs/benchmarks/evaluate_policy/{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=EVALUATED_SETTINGS,
    threads: threads_of("evaluate_policy")
    resources:
        **resources_of("evaluate_policy"),
    conda:
        ENV
    script:
        "../scripts/evaluate_policy.py"


rule evaluate_provided:
    input:
        test_data=TEST_DATA,
        reward_model=PLAN.reward_model_input(),
        evaluation_model=PLAN.model_input(PLAN.evaluation_model),
    output:
        generations="results/eval/dataset/{source}/generations.parquet",
        metrics="results/eval/dataset/{source}/metrics.json",
    params:
        reward_model=lambda wildcards: PLAN.reward_model_source(),
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_provided/{source}.log",
    benchmark:
        "logs/benchmarks/evaluate_provided/{source}.tsv"
    wildcard_constraints:
        source="chosen|rejected",
    threads: threads_of("evaluate_provided")
    resources:
        **resources_of("evaluate_provided"),
    conda:
        ENV
    script:
        "../scripts/evaluate_provided.py"


rule evaluate_reward_model:
    input:
        reward_model=PLAN.reward_model_input(),
        scored=list(PLAN.agreement_training_sets().values()),
    output:
        metrics="results/eval/reward_model/metrics.json",
    params:
        reward_model=lambda wildcards: PLAN.reward_model_source(),
        names=list(PLAN.agreement_training_sets()),
    log:
        "logs/evaluate_reward_model/reward_model.log",
    conda:
        ENV
    script:
        "../scripts/evaluate_reward_model.py"


rule evaluate_best_of_n:
    input:
        test_data=TEST_DATA,
        policy=lambda wildcards: PLAN.model_input(wildcards.policy),
        reward_model=PLAN.reward_model_input(),
    output:
        samples="results/eval/{policy}/best-of-{n}/samples.parquet",
        generations="results/eval/{policy}/best-of-{n}/generations.parquet",
        metrics="results/eval/{policy}/best-of-{n}/metrics.json",
    params:
        policy=lambda wildcards: PLAN.model_path(wildcards.policy),
        reward_model=lambda wildcards: PLAN.reward_model_source(),
        n=lambda wildcards: int(wildcards.n),
        best_of_n=config["evaluation"]["best_of_n"],
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_best_of_n/{policy}_{n}.log",
    benchmark:
        "logs/benchmarks/evaluate_best_of_n/{policy}_{n}.tsv"
    wildcard_constraints:
        n="[1-9][0-9]*",
    threads: threads_of("evaluate_best_of_n")
    resources:
        **resources_of("evaluate_best_of_n"),
    conda:
        ENV
    script:
        "../scripts/evaluate_best_of_n.py"


# Table 5: how often a scorer prefers a test pair's chosen reply. A policy scores a reply by its log-probability
# normalised with rrhf.length_penalty, passed alone so that changing the rest of `rrhf` re-runs nothing here.
rule policy_pair_accuracy:
    input:
        test_data=TEST_DATA,
        policy=evaluated_model_input,
    output:
        accuracy="results/eval/{policy}/{setting}/pair_accuracy.json",
    params:
        scorer="policy",
        model=evaluated_model,
        scoring=config["scoring"],
        length_penalty=config["rrhf"]["length_penalty"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/pair_accuracy/{policy}_{setting}.log",
    wildcard_constraints:
        setting=EVALUATED_SETTINGS,
    threads: threads_of("pair_accuracy")
    resources:
        **resources_of("pair_accuracy"),
    conda:
        ENV
    script:
        "../scripts/pair_accuracy.py"


use rule policy_pair_accuracy as reward_model_pair_accuracy with:
    input:
        test_data=TEST_DATA,
        reward_model=PLAN.reward_model_input(),
    output:
        accuracy="results/eval/reward_model/pair_accuracy.json",
    params:
        scorer="reward_model",
        model=lambda wildcards: PLAN.reward_model_source(),
        scoring=config["scoring"],
        length_penalty=config["rrhf"]["length_penalty"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/pair_accuracy/reward_model.log",
