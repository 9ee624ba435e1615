# Evaluation stage: one generation per test prompt, cut at the next turn, scored by the
# reward model and the evaluation LM (perplexity), with its KL to the untrained policy; best-of-n;
# Table 5's pair accuracy.


rule evaluate_policy:
    input:
        test_data=TEST_DATA,
        policy=evaluated_model_input,
        initial_policy=policy_input,
        reward_model=reward_model_input,
        evaluation_model=lambda wildcards: PLAN.model_input(PLAN.evaluation_model, wildcards.replicate),
    output:
        generations=paths.EVALUATION(name="generations.parquet"),
        metrics=paths.EVALUATION(name="metrics.json"),
    params:
        policy=evaluated_model,
        # rho, the untrained model the evaluated one started from: the KL(pi || rho) of each reply.
        initial_policy=policy_path,
        reward_model=reward_model_source,
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model, wildcards.replicate),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        **INFERENCE,
    log:
        paths.log_file("evaluate_policy", paths.EVALUATION(name="")),
    benchmark:
        paths.benchmark_file("evaluate_policy", paths.EVALUATION(name=""))
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
        reward_model=reward_model_input,
        evaluation_model=lambda wildcards: PLAN.model_input(PLAN.evaluation_model, wildcards.replicate),
    output:
        generations=paths.DATASET_REPLIES(name="generations.parquet"),
        metrics=paths.DATASET_REPLIES(name="metrics.json"),
    params:
        reward_model=reward_model_source,
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model, wildcards.replicate),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        **INFERENCE,
    log:
        paths.log_file("evaluate_provided", paths.DATASET_REPLIES(name="")),
    benchmark:
        paths.benchmark_file("evaluate_provided", paths.DATASET_REPLIES(name=""))
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
# that reads its prompts through its chat template (PROMPT_FORMAT_MODEL) answers the test prompts in the raw HH
# format too, beside its own evaluation (results/eval/{model}/none). None of it in the tiny default.


rule evaluate_prompt_format:
    input:
        test_data=TEST_DATA,
        policy=lambda wildcards: PLAN.model_input(PROMPT_FORMAT_MODEL),
        reward_model=lambda wildcards: PLAN.reward_model_input(),
        evaluation_model=lambda wildcards: PLAN.model_input(PLAN.evaluation_model),
    output:
        generations=paths.PROMPT_FORMAT(name="generations.parquet"),
        metrics=paths.PROMPT_FORMAT(name="metrics.json"),
    params:
        policy=lambda wildcards: PLAN.model_path(PROMPT_FORMAT_MODEL),
        reward_model=lambda wildcards: PLAN.reward_model_source(),
        evaluation_model=lambda wildcards: PLAN.model_path(PLAN.evaluation_model),
        decoding=config["evaluation"]["decoding"],
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        **INFERENCE,
    log:
        paths.log_file("evaluate_prompt_format", paths.PROMPT_FORMAT(name="")),
    benchmark:
        paths.benchmark_file("evaluate_prompt_format", paths.PROMPT_FORMAT(name=""))
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
        raw=paths.PROMPT_FORMAT(format="raw", name="metrics.json"),
        own=lambda wildcards: PLAN.evaluation_file(PROMPT_FORMAT_MODEL, "none", "metrics.json"),
    output:
        table=paths.PROMPT_FORMATS(),
    params:
        max_new_tokens=config["evaluation"]["decoding"]["max_new_tokens"],
    log:
        paths.log_file("prompt_formats", paths.PROMPT_FORMATS, "prompt_formats"),
    conda:
        ENV
    script:
        "../scripts/prompt_formats.py"


rule evaluate_reward_model:
    input:
        reward_model=reward_model_input,
        scored=lambda wildcards: list(PLAN.agreement_training_sets(wildcards.replicate).values()),
    output:
        metrics=paths.REWARD_MODEL_EVALUATION(name="metrics.json"),
    params:
        reward_model=reward_model_source,
        names=lambda wildcards: list(PLAN.agreement_training_sets(wildcards.replicate)),
    log:
        paths.log_file("evaluate_reward_model", paths.REWARD_MODEL_EVALUATION(name=""), "reward_model"),
    conda:
        ENV
    script:
        "../scripts/evaluate_reward_model.py"


rule evaluate_best_of_n:
    input:
        test_data=TEST_DATA,
        policy=policy_input,
        reward_model=reward_model_input,
    output:
        samples=paths.BEST_OF_N(name="samples.parquet"),
        generations=paths.BEST_OF_N(name="generations.parquet"),
        metrics=paths.BEST_OF_N(name="metrics.json"),
    params:
        policy=policy_path,
        reward_model=reward_model_source,
        n=lambda wildcards: int(wildcards.n),
        best_of_n=lambda wildcards: PLAN.best_of_n_for(wildcards.replicate),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("test"),
        **INFERENCE,
    log:
        paths.log_file("evaluate_best_of_n", paths.BEST_OF_N(name="")),
    benchmark:
        paths.benchmark_file("evaluate_best_of_n", paths.BEST_OF_N(name=""))
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
        accuracy=paths.EVALUATION(name="pair_accuracy.json"),
    params:
        scorer="policy",
        model=evaluated_model,
        scoring=config["scoring"],
        length_penalty=config["rrhf"]["length_penalty"],
        **INFERENCE,
    log:
        paths.log_file("pair_accuracy", paths.EVALUATION(name="")),
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
        reward_model=reward_model_input,
    output:
        accuracy=paths.REWARD_MODEL_EVALUATION(name="pair_accuracy.json"),
    params:
        scorer="reward_model",
        model=reward_model_source,
        scoring=config["scoring"],
        length_penalty=config["rrhf"]["length_penalty"],
        **INFERENCE,
    log:
        paths.log_file("pair_accuracy", paths.REWARD_MODEL_EVALUATION(name=""), "reward_model"),


# How well each reward model built here ranks by gold, in every replicate (rrhf.evaluation.reward_builds; in
# `make findings`: reward_unbiased is built for it only).
localrules:
    reward_models,


rule reward_models:
    input:
        models=[PLAN.model_path(name, r) for r, name in REWARD_BUILDS],
    output:
        table=paths.REWARD_BUILDS(),
    params:
        replicates=[r for r, _ in REWARD_BUILDS],
        names=[name for _, name in REWARD_BUILDS],
    log:
        paths.log_file("reward_models", paths.REWARD_BUILDS, "reward_models"),
    conda:
        ENV
    script:
        "../scripts/reward_models.py"
