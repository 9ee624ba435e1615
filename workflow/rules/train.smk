# Training stage: RRHF on a setting's scored training set (IP-{n} starting from IP-(n-1)'s model), online
# RRHF (OP-{k}[+KL]) and PPO: results/models/{policy}/{setting}/ (safetensors, train_log.parquet,
# metrics.json). Which rule trains a setting is said once, by its kind (rrhf.plan.settings.TRAINERS). Each gets
# its config block whole (RRHF's with the setting's rank weight); the checkpoint settings are read from the
# config by the scripts, so changing them re-runs nothing.
REWARD_DURING_TRAINING = PLAN.rrhf.reward_during_training.every_steps > 0  # train_rrhf's Figure 3 reward


rule train_rrhf:
    input:
        scored=lambda wildcards: PLAN.scored_file(wildcards.policy, wildcards.setting, wildcards.replicate),
        policy=starting_model_input,
        reward_model=reward_model_input if REWARD_DURING_TRAINING else [],
    output:
        model=directory(paths.TRAINED_MODEL()),
    params:
        policy=starting_model,
        rrhf=lambda wildcards: PLAN.rrhf_for(wildcards.setting, wildcards.replicate),
        scoring=config["scoring"] if REWARD_DURING_TRAINING else None,
        precision=config["precision"],
        reward_model=reward_model_source if REWARD_DURING_TRAINING else None,
        accelerate_config=PLAN.accelerate_config,
    log:
        paths.log_file("train_rrhf", paths.TRAINED_MODEL),
    benchmark:
        paths.benchmark_file("train_rrhf", paths.TRAINED_MODEL)
    wildcard_constraints:
        setting=trained_by_pattern("train_rrhf", PLAN.settings),
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
        policy=policy_input,
        reward_model=reward_model_input,
    output:
        model=directory(paths.TRAINED_MODEL()),
    params:
        policy=policy_path,
        reward_model=reward_model_source,
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
        paths.log_file("train_online_rrhf", paths.TRAINED_MODEL),
    benchmark:
        paths.benchmark_file("train_online_rrhf", paths.TRAINED_MODEL)
    wildcard_constraints:
        setting=trained_by_pattern("train_online_rrhf", PLAN.settings),
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
        policy=policy_input,
        reward_model=reward_model_input,
    output:
        model=directory(paths.TRAINED_MODEL()),
    params:
        policy=policy_path,
        reward_model=reward_model_source,
        ppo=lambda wildcards: PLAN.ppo_for(wildcards.replicate, wildcards.setting),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("train"),
        precision=config["precision"],
    log:
        paths.log_file("train_ppo", paths.TRAINED_MODEL),
    benchmark:
        paths.benchmark_file("train_ppo", paths.TRAINED_MODEL)
    wildcard_constraints:
        setting=trained_by_pattern("train_ppo", PLAN.settings),
    priority: 10  # a long job: started as soon as it can be, so short ones fill in around it
    threads: threads_of("train_ppo")
    resources:
        **resources_of("train_ppo"),
    conda:
        ENV
    script:
        "../scripts/train_ppo.py"
