# Models stage: build the tiny default's tokenizer and models into
# resources/models/{name}/, and import GGUF files (or models read in another prompt format) there once; hub or
# local models are otherwise loaded where they are.


rule import_model:
    input:
        # A GGUF file given by path is the job's input (a package: resource is found in the environment).
        source=lambda wildcards: import_input(PLAN.models[wildcards.name]),
    output:
        model=directory(paths.MODEL(replicate="")),
    params:
        source=lambda wildcards: PLAN.models[wildcards.name]["path"],
        prompt_format=lambda wildcards: PLAN.models[wildcards.name]["prompt_format"],
    log:
        paths.log_file("import_model", paths.MODEL(replicate="")),
    benchmark:
        paths.benchmark_file("import_model", paths.MODEL(replicate=""))
    wildcard_constraints:
        name=names_pattern(imported_models(PLAN.models)),
    threads: threads_of("import_model")
    resources:
        **resources_of("import_model"),
    conda:
        ENV
    script:
        "../scripts/import_model.py"


rule build_tokenizer:
    input:
        data=build_train_data,
    output:
        model=directory(paths.MODEL(replicate="")),
    params:
        build=lambda wildcards: PLAN.build(wildcards.name),
    log:
        paths.log_file("build_tokenizer", paths.MODEL(replicate="")),
    wildcard_constraints:
        name=names_pattern(PLAN.built_models("tokenizer")),
    conda:
        ENV
    script:
        "../scripts/build_tokenizer.py"


rule pretrain_lm:
    input:
        data=build_train_data,
        tokenizer=lambda wildcards: PLAN.model_input(PLAN.build(wildcards.name)["tokenizer"]),
    output:
        model=directory(paths.MODEL()),
    params:
        build=lambda wildcards: PLAN.build(wildcards.name, wildcards.replicate),
        precision=config["precision"],
        accelerate_config=PLAN.accelerate_config,
        tokenizer=lambda wildcards: PLAN.model_path(PLAN.build(wildcards.name)["tokenizer"]),
    log:
        paths.log_file("pretrain_lm", paths.MODEL),
    benchmark:
        paths.benchmark_file("pretrain_lm", paths.MODEL)
    wildcard_constraints:
        name=names_pattern(PLAN.built_models("pretrain")),
    threads: threads_of("pretrain_lm")
    resources:
        **resources_of("pretrain_lm"),
    conda:
        ENV
    script:
        "../scripts/pretrain_lm.py"


rule train_sft:
    input:
        data=build_train_data,
        init=lambda wildcards: PLAN.model_input(PLAN.build(wildcards.name)["init"], wildcards.replicate),
    output:
        model=directory(paths.MODEL()),
    params:
        init=lambda wildcards: PLAN.model_path(PLAN.build(wildcards.name)["init"], wildcards.replicate),
        build=lambda wildcards: PLAN.build(wildcards.name, wildcards.replicate),
        precision=config["precision"],
        accelerate_config=PLAN.accelerate_config,
    log:
        paths.log_file("train_sft", paths.MODEL),
    benchmark:
        paths.benchmark_file("train_sft", paths.MODEL)
    wildcard_constraints:
        name=names_pattern(PLAN.built_models("sft")),
    threads: threads_of("train_sft")
    resources:
        **resources_of("train_sft"),
    conda:
        ENV
    script:
        "../scripts/train_sft.py"


# A reward build's preference pairs on the initial policies' own replies (models.NAME.build.on_policy).
rule collect_preferences:
    input:
        data=build_train_data,
        policies=lambda wildcards: [path for policy in PLAN.on_policy_policies(wildcards.name, wildcards.replicate)
                                    for path in PLAN.model_input(policy, wildcards.replicate)],
    output:
        pairs=paths.ON_POLICY_PAIRS(),
    params:
        policies=lambda wildcards: PLAN.on_policy_policies(wildcards.name, wildcards.replicate),
        on_policy=lambda wildcards: PLAN.build(wildcards.name, wildcards.replicate)["on_policy"],
        excluded_prompts=PLAN.prompt_subset("train"),
        **INFERENCE,
    log:
        paths.log_file("collect_preferences", paths.ON_POLICY_PAIRS),
    benchmark:
        paths.benchmark_file("collect_preferences", paths.ON_POLICY_PAIRS)
    wildcard_constraints:
        name=names_pattern(PLAN.built_models("reward")),
    threads: threads_of("collect_preferences")
    resources:
        **resources_of("collect_preferences"),
    conda:
        ENV
    script:
        "../scripts/collect_preferences.py"


rule train_reward_model:
    input:
        data=build_train_data,
        on_policy=lambda wildcards: PLAN.on_policy_file(wildcards.name, wildcards.replicate),
        test_data=lambda wildcards: PLAN.dataset_file(PLAN.build(wildcards.name)["dataset"], "test"),
        init=lambda wildcards: PLAN.model_input(PLAN.build(wildcards.name)["init"], wildcards.replicate),
    output:
        model=directory(paths.MODEL()),
    params:
        init=lambda wildcards: PLAN.model_path(PLAN.build(wildcards.name)["init"], wildcards.replicate),
        build=lambda wildcards: PLAN.build(wildcards.name, wildcards.replicate),
        precision=config["precision"],
        accelerate_config=PLAN.accelerate_config,
    log:
        paths.log_file("train_reward_model", paths.MODEL),
    benchmark:
        paths.benchmark_file("train_reward_model", paths.MODEL)
    wildcard_constraints:
        name=names_pattern(PLAN.built_models("reward")),
    threads: threads_of("train_reward_model")
    resources:
        **resources_of("train_reward_model"),
    conda:
        ENV
    script:
        "../scripts/train_reward_model.py"
