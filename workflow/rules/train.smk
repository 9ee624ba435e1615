# Training stage: RRHF on a setting's scored training set (IP-{n} starting from IP-(n-1)'s model), online
# RRHF (OP-{k}[+KL]) and PPO: results/models/{policy}/{setting}/ (safetensors, train_log.parquet,
# metrics.json).
REWARD_DURING_TRAINING = config["rrhf"]["reward_during_training"]  # train_rrhf's Figure 3 reward (off: every_steps 0)


rule train_rrhf:
    input:
        scored=lambda wildcards: scored_file(wildcards.policy, wildcards.setting),
        policy=lambda wildcards: starting_model_input(wildcards.policy, wildcards.setting),
        reward_model=lambda wildcards: reward_model_input() if REWARD_DURING_TRAINING["every_steps"] else [],
    output:
        model=directory("results/models/{policy}/{setting}"),
    params:
        policy=lambda wildcards: starting_model(wildcards.policy, wildcards.setting),
        reward_model=lambda wildcards: reward_model_source() if REWARD_DURING_TRAINING["every_steps"] else None,
        reward_during_training=REWARD_DURING_TRAINING,
        dataset_source=DATASET_SOURCE,
        dtype=config["precision"]["dtype"],
        training=training_settings(config["rrhf"]["training"]),
        accelerate_config=ACCELERATE_CONFIG,
        rank_weight=lambda wildcards: setting_rank_weight(wildcards.setting),
        length_penalty=config["rrhf"]["length_penalty"],
        ft_reduction=config["rrhf"]["ft_reduction"],
        max_tokens_per_forward=config["rrhf"]["max_tokens_per_forward"],
        prompt_sharing=config["rrhf"]["prompt_sharing"],
    log:
        "logs/train_rrhf/{policy}_{setting}.log",
    benchmark:
        "benchmarks/train_rrhf/{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=f"{names_pattern(SETTINGS)}|{LATER_ITERATION_PATTERN}",
    threads: rule_threads("train_rrhf")
    resources:
        **rule_resources("train_rrhf"),
    conda:
        ENV
    script:
        "../scripts/train_rrhf.py"


rule train_online_rrhf:
    input:
        unpack(online_provided_input),
        train_data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: model_input(wildcards.policy),
        reward_model=reward_model_input(),
    output:
        model=directory("results/models/{policy}/{setting}"),
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        reward_model=lambda wildcards: reward_model_source(),
        online=online_params,
        training=training_settings(config["rrhf"]["training"]),
        rank_weight=lambda wildcards: setting_rank_weight(wildcards.setting),
        length_penalty=config["rrhf"]["length_penalty"],
        ft_reduction=config["rrhf"]["ft_reduction"],
        max_tokens_per_forward=config["rrhf"]["max_tokens_per_forward"],
        prompt_sharing=config["rrhf"]["prompt_sharing"],
        scoring=config["scoring"],
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        dataset_source=DATASET_SOURCE,
        dtype=config["precision"]["dtype"],
    log:
        "logs/train_online_rrhf/{policy}_{setting}.log",
    benchmark:
        "benchmarks/train_online_rrhf/{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=ONLINE_PATTERN,
    threads: rule_threads("train_online_rrhf")
    resources:
        **rule_resources("train_online_rrhf"),
    conda:
        ENV
    script:
        "../scripts/train_online_rrhf.py"


rule train_ppo:
    input:
        train_data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: model_input(wildcards.policy),
        reward_model=reward_model_input(),
    output:
        model=directory("results/models/{policy}/PPO"),
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        reward_model=lambda wildcards: reward_model_source(),
        ppo={key: value for key, value in config["ppo"].items() if key != "training"},
        training=training_settings(config["ppo"]["training"]),
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        dataset_source=DATASET_SOURCE,
        dtype=config["precision"]["dtype"],
    log:
        "logs/train_ppo/{policy}.log",
    benchmark:
        "benchmarks/train_ppo/{policy}.tsv"
    threads: rule_threads("train_ppo")
    resources:
        **rule_resources("train_ppo"),
    conda:
        ENV
    script:
        "../scripts/train_ppo.py"
