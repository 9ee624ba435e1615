# Fine-grained RLHF (config key `fine_grained`; rrhf.studies.fine_grained, docs/fine_grained.md): feedback on the
# segments of one initial policy's sampled replies (qa-feedback layout), a reward model per kind of error, PPO
# with a reward at the end of every segment (FG-PPO[-{variant}]), each row's fine-grained evaluation, and
# results/table_fine_grained.csv.
FINE_GRAINED_ROWS = labelled_rows(PLAN, "table_fine_grained")
from rrhf.studies.fine_grained.study import SEGMENT_MODEL_KINDS


localrules:
    table_fine_grained,
    fine_grained_reward_models,
    annotation_page,


rule collect_fine_grained_feedback:
    input:
        train_data=TRAIN_DATA,
        # the policy whose replies are sampled, unless people's annotations are given
        policy=lambda wildcards: (
            [] if FINE_GRAINED.block.feedback.file else PLAN.model_input(FINE_GRAINED.policy(), wildcards.replicate)
        ),
        # people's annotations, where the config gives them (fine_grained.feedback.file)
        given=lambda wildcards: FINE_GRAINED.given_feedback(),
    output:
        feedback=paths.FINE_GRAINED(name="feedback.json"),
        completeness=paths.FINE_GRAINED(name="completeness.json"),
    params:
        policy=lambda wildcards: PLAN.model_path(FINE_GRAINED.policy(), wildcards.replicate),
        feedback=lambda wildcards: FINE_GRAINED.feedback(wildcards.replicate),
        excluded_prompts=PLAN.prompt_subset("train"),
        max_prompt_tokens=lambda wildcards: PLAN.ppo.training.max_length
        - FINE_GRAINED.block.feedback.generation.max_new_tokens,
        **INFERENCE,
    log:
        paths.log_file("collect_fine_grained_feedback", paths.FINE_GRAINED(name=""), "collect_feedback"),
    benchmark:
        paths.benchmark_file("collect_fine_grained_feedback", paths.FINE_GRAINED(name=""), "collect_feedback")
    threads: threads_of("collect_fine_grained_feedback")
    resources:
        **resources_of("collect_fine_grained_feedback"),
    conda:
        ENV
    script:
        "../scripts/collect_fine_grained_feedback.py"


rule train_segment_reward_model:
    input:
        feedback=lambda wildcards: FINE_GRAINED.file(
            "completeness.json" if wildcards.kind == "completeness" else "feedback.json", wildcards.replicate
        ),
        init=lambda wildcards: FINE_GRAINED.init(wildcards.replicate)[1],
    output:
        model=directory(paths.SEGMENT_REWARD_MODEL()),
    params:
        init=lambda wildcards: FINE_GRAINED.init(wildcards.replicate)[0],
        reward_models=lambda wildcards: FINE_GRAINED.reward_model_build(wildcards.kind, wildcards.replicate),
        held_out=lambda wildcards: FINE_GRAINED.block.feedback.held_out,
        precision=config["precision"],
    log:
        paths.log_file("train_segment_reward_model", paths.SEGMENT_REWARD_MODEL),
    benchmark:
        paths.benchmark_file("train_segment_reward_model", paths.SEGMENT_REWARD_MODEL)
    wildcard_constraints:
        kind="|".join(SEGMENT_MODEL_KINDS),
    threads: threads_of("train_segment_reward_model")
    resources:
        **resources_of("train_segment_reward_model"),
    conda:
        ENV
    script:
        "../scripts/train_segment_reward_model.py"


rule train_fine_grained_ppo:
    input:
        train_data=TRAIN_DATA,
        policy=policy_input,
        reward_model=reward_model_input,
        segment_reward_models=lambda wildcards: list(FINE_GRAINED.reward_models(wildcards.replicate).values()),
    output:
        model=directory(paths.TRAINED_MODEL()),
    params:
        policy=policy_path,
        reward_model=reward_model_source,
        ppo=lambda wildcards: FINE_GRAINED.ppo_for(wildcards.setting, wildcards.replicate),
        fine_grained=lambda wildcards: FINE_GRAINED.training(wildcards.setting, wildcards.replicate),
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("train"),
        precision=config["precision"],
    log:
        paths.log_file("train_fine_grained_ppo", paths.TRAINED_MODEL),
    benchmark:
        paths.benchmark_file("train_fine_grained_ppo", paths.TRAINED_MODEL)
    wildcard_constraints:
        setting=trained_by_pattern("train_fine_grained_ppo", PLAN.settings),
    priority: 10  # a long job: started as soon as it can be, so short ones fill in around it
    threads: threads_of("train_fine_grained_ppo")
    resources:
        **resources_of("train_fine_grained_ppo"),
    conda:
        ENV
    script:
        "../scripts/train_ppo.py"


rule evaluate_fine_grained:
    input:
        generations=lambda wildcards: PLAN.evaluation_file(
            wildcards.policy, wildcards.setting, "generations.parquet", wildcards.replicate
        ),
        reward_models=lambda wildcards: list(FINE_GRAINED.reward_models(wildcards.replicate).values()),
    output:
        segments=paths.FINE_GRAINED_EVALUATION(name="segments.parquet"),
        metrics=paths.FINE_GRAINED_EVALUATION(name="metrics.json"),
    params:
        reward_models=lambda wildcards: FINE_GRAINED.reward_models(wildcards.replicate),
        marker_position=lambda wildcards: FINE_GRAINED.block.reward_models.marker_position,
        max_length=lambda wildcards: FINE_GRAINED.block.reward_models.max_length,
        device=config["device"],
    log:
        paths.log_file("evaluate_fine_grained", paths.FINE_GRAINED_EVALUATION(name="")),
    wildcard_constraints:
        setting=EVALUATED_SETTINGS,
    threads: threads_of("evaluate_fine_grained")
    resources:
        **resources_of("evaluate_fine_grained"),
    conda:
        ENV
    script:
        "../scripts/evaluate_fine_grained.py"


rule table_fine_grained:
    input:
        metrics=[PLAN.evaluation_file(row["model"], row["setting"], "metrics.json", r)
                 for r in REPLICATES for row in FINE_GRAINED_ROWS],
        fine_grained=[FINE_GRAINED.evaluation(row["model"], row["setting"], "metrics.json", r)
                      for r in REPLICATES for row in FINE_GRAINED_ROWS],
    output:
        table=report(
            paths.TABLE(table="table_fine_grained"),
            caption="../report/table_fine_grained.rst",
            category=CATEGORY["tables"],
            labels={"table": "Fine-grained RLHF", "format": "csv (download)"},
        ),
    params:
        rows=[{"policy": row["policy"], "setting": row["setting"]} for row in FINE_GRAINED_ROWS],
        replicates=len(REPLICATES),
    log:
        paths.log_file("tables", name="table_fine_grained"),
    conda:
        ENV
    script:
        "../scripts/table_fine_grained.py"


rule fine_grained_reward_models:
    input:
        models=[FINE_GRAINED.reward_models(r)[kind] for r in REPLICATES for kind in SEGMENT_MODEL_KINDS]
        if FINE_GRAINED else [],
    output:
        table=paths.FINE_GRAINED_REWARD_MODELS(),
    params:
        replicates=[r for r in REPLICATES for _ in SEGMENT_MODEL_KINDS],
        kinds=[kind for _ in REPLICATES for kind in SEGMENT_MODEL_KINDS],
    log:
        paths.log_file("fine_grained_reward_models", name="fine_grained_reward_models"),
    conda:
        ENV
    script:
        "../scripts/fine_grained_reward_models.py"


rule annotation_page:
    input:
        feedback=paths.FINE_GRAINED(replicate="", name="feedback.json"),
    output:
        page=paths.ANNOTATION_PAGE(),
    params:
        title="Fine-grained feedback: mark the errors of prediction 1, add what it misses, compare the replies",
    log:
        paths.log_file("annotation_page", name="annotation_page"),
    conda:
        ENV
    script:
        "../scripts/annotation_page.py"
