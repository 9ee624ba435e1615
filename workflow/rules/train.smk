# Training stage: RRHF on a setting's scored training set (IP-{n} starting from IP-(n-1)'s model), online
# RRHF (OP-{k}[+KL]) and PPO: results/models/{policy}/{setting}/ (safetensors, train_log.parquet,
# metrics.json). Each gets its config block whole (RRHF's with the setting's rank weight); the checkpoint
# settings are read from the config by the scripts, so changing them re-runs nothing.
REWARD_DURING_TRAINING = PLAN.rrhf.reward_during_training.every_steps > 0  # train_rrhf's Figure 3 reward


rule train_rrhf:
    input:
        scored=lambda wildcards: PLAN.scored_file(wildcards.policy, wildcards.setting, wildcards.replicate),
        policy=starting_model_input,
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate) if REWARD_DURING_TRAINING else [],
    output:
        model=directory("results/{replicate}models/{policy}/{setting}"),
    params:
        policy=starting_model,
        rrhf=lambda wildcards: PLAN.rrhf_for(wildcards.setting, wildcards.replicate),
        scoring=config["scoring"] if REWARD_DURING_TRAINING else None,
        precision=config["precision"],
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate) if REWARD_DURING_TRAINING else None,
        accelerate_config=PLAN.accelerate_config,
    log:
        "logs/train_rrhf/{replicate}{policy}_{setting}.log",
    benchmark:
        "logs/benchmarks/train_rrhf/{replicate}{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=f"{names_pattern(PLAN.settings)}|{LATER_ITERATION_PATTERN}",
    threads: threads_of("train_rrhf")
    resources:
        **resources_of("train_rrhf"),
    conda:
        ENV
    script:
        "../scripts/train_rrhf.py"


rule train_online_rrhf:
    input:
        unpack(online_provided_input),
        train_data=TRAIN_DATA,
        policy=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        model=directory("results/{replicate}models/{policy}/{setting}"),
    params:
        policy=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        rrhf=lambda wildcards: PLAN.rrhf_for(wildcards.setting, wildcards.replicate),
        online=lambda wildcards: PLAN.online_for(wildcards.setting),
        sampling=lambda wildcards: PLAN.sampling_for(
            PLAN.online_for(wildcards.setting)["sampler"], wildcards.replicate, PLAN.resampling.online_batch_size
        ),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("train"),
        precision=config["precision"],
        accelerate_config=PLAN.accelerate_config,
    log:
        "logs/train_online_rrhf/{replicate}{policy}_{setting}.log",
    benchmark:
        "logs/benchmarks/train_online_rrhf/{replicate}{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=ONLINE_PATTERN,
    priority: 10  # a long job: started as soon as it can be, so short ones fill in around it
    threads: threads_of("train_online_rrhf")
    resources:
        **resources_of("train_online_rrhf"),
    conda:
        ENV
    script:
        "../scripts/train_online_rrhf.py"


rule train_ppo:
    input:
        train_data=TRAIN_DATA,
        policy=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
    output:
        model=directory("results/{replicate}models/{policy}/{ppo_setting}"),
    params:
        policy=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        ppo=lambda wildcards: PLAN.ppo_for(wildcards.replicate, wildcards.ppo_setting),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("train"),
        precision=config["precision"],
    log:
        "logs/train_ppo/{replicate}{policy}_{ppo_setting}.log",
    benchmark:
        "logs/benchmarks/train_ppo/{replicate}{policy}_{ppo_setting}.tsv"
    wildcard_constraints:
        ppo_setting=names_pattern(PPO_SETTINGS),
    priority: 10  # a long job: started as soon as it can be, so short ones fill in around it
    threads: threads_of("train_ppo")
    resources:
        **resources_of("train_ppo"),
    conda:
        ENV
    script:
        "../scripts/train_ppo.py"
