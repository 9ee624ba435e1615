# Evaluation stage: one generation per test prompt, cut at the next turn, scored by the
# reward model and the evaluation LM (perplexity), with its KL to the untrained policy; best-of-n;
# Table 5's pair accuracy.


rule evaluate_policy:
    input:
        test_data=TEST_DATA,
        policy=evaluated_model_input,
        initial_policy=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
        evaluation_model=lambda wildcards: PLAN.model_input(PLAN.evaluation_model, wildcards.replicate),
    output:
        generations="results/{replicate}eval/{policy}/{setting}/generations.parquet",
        metrics="results/{replicate}eval/{policy}/{setting}/metrics.json",
    params:
        policy=evaluated_model,
        # rho, the untrained model the evaluated one started from: the KL(pi || rho) of each reply.
        initial_policy=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model, wildcards.replicate),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_policy/{replicate}{policy}_{setting}.log",
    benchmark:
        "logs/benchmarks/evaluate_policy/{replicate}{policy}_{setting}.tsv"
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
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
        evaluation_model=lambda wildcards: PLAN.model_input(PLAN.evaluation_model, wildcards.replicate),
    output:
        generations="results/{replicate}eval/dataset/{source}/generations.parquet",
        metrics="results/{replicate}eval/dataset/{source}/metrics.json",
    params:
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model, wildcards.replicate),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_provided/{replicate}{source}.log",
    benchmark:
        "logs/benchmarks/evaluate_provided/{replicate}{source}.tsv"
    wildcard_constraints:
        source="chosen|rejected",
    threads: threads_of("evaluate_provided")
    resources:
        **resources_of("evaluate_provided"),
    conda:
        ENV
    script:
        "../scripts/evaluate_provided.py"


# The prompt formats on one real model (results/prompt_formats.csv, docs/real_model.md): the first initial policy
# that reads its prompts through its chat template answers the test prompts in the raw HH format too, beside its
# own evaluation (results/eval/{model}/none). None of it when every policy reads raw text (the tiny default).
PROMPT_FORMAT_MODEL = prompt_format_model(config["models"], config["policies"])
PROMPT_FORMAT_TARGETS = ["results/prompt_formats.csv"] if PROMPT_FORMAT_MODEL else []


rule evaluate_prompt_format:
    input:
        test_data=TEST_DATA,
        policy=lambda wildcards: PLAN.model_input(PROMPT_FORMAT_MODEL),
        reward_model=lambda wildcards: PLAN.reward_model_input(),
        evaluation_model=lambda wildcards: PLAN.model_input(PLAN.evaluation_model),
    output:
        generations="results/prompt_formats/{format}/generations.parquet",
        metrics="results/prompt_formats/{format}/metrics.json",
    params:
        policy=lambda wildcards: PLAN.model_path(PROMPT_FORMAT_MODEL),
        reward_model=lambda wildcards: PLAN.reward_model_source(),
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_prompt_format/{format}.log",
    benchmark:
        "logs/benchmarks/evaluate_prompt_format/{format}.tsv"
    wildcard_constraints:
        format="raw",
    threads: threads_of("evaluate_prompt_format")
    resources:
        **resources_of("evaluate_prompt_format"),
    conda:
        ENV
    script:
        "../scripts/evaluate_prompt_format.py"


localrules:
    prompt_formats,


rule prompt_formats:
    input:
        raw="results/prompt_formats/raw/metrics.json",
        own=lambda wildcards: f"results/eval/{PROMPT_FORMAT_MODEL}/none/metrics.json",
    output:
        table="results/prompt_formats.csv",
    params:
        max_new_tokens=config["evaluation"]["decoding"]["max_new_tokens"],
    log:
        "logs/prompt_formats/prompt_formats.log",
    conda:
        ENV
    script:
        "../scripts/prompt_formats.py"


rule evaluate_reward_model:
    input:
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
        scored=lambda wildcards: list(PLAN.agreement_training_sets(wildcards.replicate).values()),
    output:
        metrics="results/{replicate}eval/reward_model/metrics.json",
    params:
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        names=lambda wildcards: list(PLAN.agreement_training_sets(wildcards.replicate)),
    log:
        "logs/evaluate_reward_model/{replicate}reward_model.log",
    conda:
        ENV
    script:
        "../scripts/evaluate_reward_model.py"


rule evaluate_best_of_n:
    input:
        test_data=TEST_DATA,
        policy=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        samples="results/{replicate}eval/{policy}/best-of-{n}/samples.parquet",
        generations="results/{replicate}eval/{policy}/best-of-{n}/generations.parquet",
        metrics="results/{replicate}eval/{policy}/best-of-{n}/metrics.json",
    params:
        policy=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        n=lambda wildcards: int(wildcards.n),
        best_of_n=lambda wildcards: PLAN.best_of_n_for(wildcards.replicate),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/evaluate_best_of_n/{replicate}{policy}_{n}.log",
    benchmark:
        "logs/benchmarks/evaluate_best_of_n/{replicate}{policy}_{n}.tsv"
    wildcard_constraints:
        n="[1-9][0-9]*",
    priority: 10  # a long job: started as soon as it can be, so short ones fill in around it
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
        accuracy="results/{replicate}eval/{policy}/{setting}/pair_accuracy.json",
    params:
        scorer="policy",
        model=evaluated_model,
        scoring=config["scoring"],
        length_penalty=config["rrhf"]["length_penalty"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/pair_accuracy/{replicate}{policy}_{setting}.log",
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
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        accuracy="results/{replicate}eval/reward_model/pair_accuracy.json",
    params:
        scorer="reward_model",
        model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        scoring=config["scoring"],
        length_penalty=config["rrhf"]["length_penalty"],
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/pair_accuracy/{replicate}reward_model.log",
