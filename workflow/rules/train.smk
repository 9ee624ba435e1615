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
