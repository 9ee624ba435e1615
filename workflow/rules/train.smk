# Training stage: RRHF on a setting's scored training set,
# results/models/{policy}/{setting}/ (safetensors, train_log.parquet, metrics.json).


rule train_rrhf:
    input:
        scored=lambda wildcards: scored_file(wildcards.policy, wildcards.setting),
        policy=lambda wildcards: model_input(wildcards.policy),
    output:
        model=directory("results/models/{policy}/{setting}"),
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        training=config["rrhf"]["training"],
        accelerate_config=ACCELERATE_CONFIG,
        rank_weight=lambda wildcards: setting_rank_weight(wildcards.setting),
        length_penalty=config["rrhf"]["length_penalty"],
        ft_reduction=config["rrhf"]["ft_reduction"],
        max_tokens_per_forward=config["rrhf"]["max_tokens_per_forward"],
    log:
        "logs/train_rrhf/{policy}_{setting}.log",
    benchmark:
        "benchmarks/train_rrhf/{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=names_pattern(SETTINGS),
    threads: rule_threads("train_rrhf")
    resources:
        **rule_resources("train_rrhf"),
    conda:
        ENV
    script:
        "../scripts/train_rrhf.py"


rule train_ppo:
    input:
        train_data=dataset_file(config["data"]["dataset"], "train"),
        policy=lambda wildcards: model_input(wildcards.policy),
        reward_model=model_input(REWARD_MODEL),
    output:
        model=directory("results/models/{policy}/PPO"),
    params:
        policy=lambda wildcards: model_path(wildcards.policy),
        reward_model=lambda wildcards: model_path(REWARD_MODEL),
        ppo={key: value for key, value in config["ppo"].items() if key != "training"},
        training=config["ppo"]["training"],
        limit=config["data"]["train_prompts"],
        selection_seed=config["data"]["selection_seed"],
        dataset_source=DATASET_SOURCE,
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
