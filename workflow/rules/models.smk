# Models stage: build the tiny default's tokenizer and models into
# resources/models/{name}/ (hub or local models are loaded where they are).


rule build_tokenizer:
    input:
        data=build_train_data,
    output:
        model=directory("resources/models/{name}"),
    params:
        vocab_size=lambda wildcards: build_spec(wildcards.name)["vocab_size"],
    log:
        "logs/build_tokenizer/{name}.log",
    wildcard_constraints:
        name=names_pattern(built_models("tokenizer")),
    conda:
        ENV
    script:
        "../scripts/build_tokenizer.py"


rule pretrain_lm:
    input:
        data=build_train_data,
        tokenizer=lambda wildcards: model_input(build_spec(wildcards.name)["tokenizer"]),
    output:
        model=directory("resources/models/{name}"),
    params:
        architecture=lambda wildcards: build_spec(wildcards.name)["architecture"],
        training=lambda wildcards: training_settings(build_spec(wildcards.name)["training"]),
        accelerate_config=ACCELERATE_CONFIG,
        tokenizer=lambda wildcards: model_path(build_spec(wildcards.name)["tokenizer"]),
    log:
        "logs/pretrain_lm/{name}.log",
    benchmark:
        "benchmarks/pretrain_lm/{name}.tsv"
    wildcard_constraints:
        name=names_pattern(built_models("pretrain")),
    threads: rule_threads("pretrain_lm")
    resources:
        **rule_resources("pretrain_lm"),
    conda:
        ENV
    script:
        "../scripts/pretrain_lm.py"


rule train_sft:
    input:
        data=build_train_data,
        init=lambda wildcards: model_input(build_spec(wildcards.name)["init"]),
    output:
        model=directory("resources/models/{name}"),
    params:
        init=lambda wildcards: model_path(build_spec(wildcards.name)["init"]),
        training=lambda wildcards: training_settings(build_spec(wildcards.name)["training"]),
        accelerate_config=ACCELERATE_CONFIG,
        max_examples=lambda wildcards: build_spec(wildcards.name)["max_examples"],
    log:
        "logs/train_sft/{name}.log",
    benchmark:
        "benchmarks/train_sft/{name}.tsv"
    wildcard_constraints:
        name=names_pattern(built_models("sft")),
    threads: rule_threads("train_sft")
    resources:
        **rule_resources("train_sft"),
    conda:
        ENV
    script:
        "../scripts/train_sft.py"


rule train_reward_model:
    input:
        data=build_train_data,
        test_data=lambda wildcards: dataset_file(build_spec(wildcards.name)["dataset"], "test"),
        init=lambda wildcards: model_input(build_spec(wildcards.name)["init"]),
    output:
        model=directory("resources/models/{name}"),
    params:
        init=lambda wildcards: model_path(build_spec(wildcards.name)["init"]),
        training=lambda wildcards: training_settings(build_spec(wildcards.name)["training"]),
        accelerate_config=ACCELERATE_CONFIG,
        dataset_source=lambda wildcards: config["datasets"][build_spec(wildcards.name)["dataset"]]["source"],
    log:
        "logs/train_reward_model/{name}.log",
    benchmark:
        "benchmarks/train_reward_model/{name}.tsv"
    wildcard_constraints:
        name=names_pattern(built_models("reward")),
    threads: rule_threads("train_reward_model")
    resources:
        **rule_resources("train_reward_model"),
    conda:
        ENV
    script:
        "../scripts/train_reward_model.py"
