# Fine-grained RLHF (config key `fine_grained`; docs/fine_grained.md): feedback on the segments of one initial
# policy's sampled replies (qa-feedback layout), a reward model per kind of error, PPO with a reward at the end
# of every segment (FG-PPO[-{variant}]), each row's fine-grained evaluation, and results/table_fine_grained.csv.
from rrhf.plan.settings import FINE_GRAINED_PATTERN

FINE_GRAINED = PLAN.fine_grained
FINE_GRAINED_ROWS = [{"model": PLAN.policies[row.policy], "policy": PLAN.display_name(PLAN.policies[row.policy]),
                      "setting": row.setting} for row in PLAN.tables.get("table_fine_grained", [])]
SEGMENT_MODEL_KINDS = ["relevance", "factuality", "completeness"]


localrules:
    table_fine_grained,
    fine_grained_reward_models,
    annotation_page,


rule collect_fine_grained_feedback:
    input:
        train_data=TRAIN_DATA,
        # the policy whose replies are sampled, unless people's annotations are given
        policy=lambda wildcards: (
            [] if FINE_GRAINED.feedback.file else PLAN.model_input(PLAN.policies[FINE_GRAINED.policy], wildcards.replicate)
        ),
        # people's annotations, where the config gives them (fine_grained.feedback.file)
        given=lambda wildcards: [f for f in (FINE_GRAINED.feedback.file, FINE_GRAINED.feedback.completeness_file) if f],
    output:
        feedback="results/{replicate}fine_grained/feedback.json",
        completeness="results/{replicate}fine_grained/completeness.json",
    params:
        policy=lambda wildcards: PLAN.model_path(PLAN.policies[FINE_GRAINED.policy], wildcards.replicate),
        feedback=lambda wildcards: PLAN.fine_grained_feedback(wildcards.replicate),
        excluded_prompts=PLAN.prompt_subset("train"),
        max_prompt_tokens=lambda wildcards: PLAN.ppo.training.max_length - FINE_GRAINED.feedback.generation.max_new_tokens,
        device=config["device"],
        dtype=config["precision"]["dtype"],
    log:
        "logs/fine_grained/{replicate}collect_feedback.log",
    benchmark:
        "logs/benchmarks/fine_grained/{replicate}collect_feedback.tsv"
    threads: threads_of("collect_fine_grained_feedback")
    resources:
        **resources_of("collect_fine_grained_feedback"),
    conda:
        ENV
    script:
        "../scripts/collect_fine_grained_feedback.py"


rule train_segment_reward_model:
    input:
        feedback=lambda wildcards: PLAN.fine_grained_file(
            "completeness.json" if wildcards.kind == "completeness" else "feedback.json", wildcards.replicate
        ),
        init=lambda wildcards: PLAN.fine_grained_init(wildcards.replicate)[1],
    output:
        model=directory("results/{replicate}fine_grained/reward_models/{kind}"),
    params:
        init=lambda wildcards: PLAN.fine_grained_init(wildcards.replicate)[0],
        reward_models=lambda wildcards: PLAN.fine_grained_build(wildcards.kind, wildcards.replicate),
        held_out=lambda wildcards: FINE_GRAINED.feedback.held_out,
        precision=config["precision"],
    log:
        "logs/fine_grained/{replicate}reward_model_{kind}.log",
    benchmark:
        "logs/benchmarks/fine_grained/{replicate}reward_model_{kind}.tsv"
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
        policy=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_input(wildcards.replicate),
        segment_reward_models=lambda wildcards: list(PLAN.fine_grained_models(wildcards.replicate).values()),
    output:
        model=directory("results/{replicate}models/{policy}/{fine_grained_setting}"),
    params:
        policy=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        reward_model=lambda wildcards: PLAN.reward_model_source(wildcards.replicate),
        ppo=lambda wildcards: PLAN.ppo_for(wildcards.replicate, wildcards.fine_grained_setting),
        fine_grained=lambda wildcards: {
            **PLAN.fine_grained_for(wildcards.fine_grained_setting, wildcards.replicate),
            "models": PLAN.fine_grained_models(wildcards.replicate),
            "marker_position": FINE_GRAINED.reward_models.marker_position,
            "max_length": FINE_GRAINED.reward_models.max_length,
        },
        scoring=config["scoring"],
        prompts=PLAN.prompt_subset("train"),
        precision=config["precision"],
    log:
        "logs/train_fine_grained_ppo/{replicate}{policy}_{fine_grained_setting}.log",
    benchmark:
        "logs/benchmarks/train_fine_grained_ppo/{replicate}{policy}_{fine_grained_setting}.tsv"
    wildcard_constraints:
        fine_grained_setting=FINE_GRAINED_PATTERN,
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
        reward_models=lambda wildcards: list(PLAN.fine_grained_models(wildcards.replicate).values()),
    output:
        segments="results/{replicate}fine_grained/eval/{policy}/{setting}/segments.parquet",
        metrics="results/{replicate}fine_grained/eval/{policy}/{setting}/metrics.json",
    params:
        reward_models=lambda wildcards: PLAN.fine_grained_models(wildcards.replicate),
        marker_position=lambda wildcards: FINE_GRAINED.reward_models.marker_position,
        max_length=lambda wildcards: FINE_GRAINED.reward_models.max_length,
        device=config["device"],
    log:
        "logs/fine_grained/{replicate}evaluate_{policy}_{setting}.log",
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
        fine_grained=[PLAN.fine_grained_evaluation(row["model"], row["setting"], "metrics.json", r)
                      for r in REPLICATES for row in FINE_GRAINED_ROWS],
    output:
        table=report(
            "results/table_fine_grained.csv",
            caption="../report/table_fine_grained.rst",
            category=CATEGORY["tables"],
            labels={"table": "Fine-grained RLHF", "format": "csv (download)"},
        ),
    params:
        rows=[{"policy": row["policy"], "setting": row["setting"]} for row in FINE_GRAINED_ROWS],
        replicates=len(REPLICATES),
    log:
        "logs/tables/table_fine_grained.log",
    conda:
        ENV
    script:
        "../scripts/table_fine_grained.py"


rule fine_grained_reward_models:
    input:
        models=[PLAN.fine_grained_models(r)[kind] for r in REPLICATES for kind in SEGMENT_MODEL_KINDS],
    output:
        table="results/fine_grained_reward_models.csv",
    params:
        replicates=[r for r in REPLICATES for _ in SEGMENT_MODEL_KINDS],
        kinds=[kind for _ in REPLICATES for kind in SEGMENT_MODEL_KINDS],
    log:
        "logs/fine_grained/reward_models.log",
    conda:
        ENV
    script:
        "../scripts/fine_grained_reward_models.py"


rule annotation_page:
    input:
        feedback="results/fine_grained/feedback.json",
    output:
        page="results/fine_grained/annotation.html",
    params:
        title="Fine-grained feedback: mark the errors of prediction 1, add what it misses, compare the replies",
    log:
        "logs/fine_grained/annotation_page.log",
    conda:
        ENV
    script:
        "../scripts/annotation_page.py"


# What `all` builds of it: the table, every reward model's held-out metrics and the annotation page. With people's
# feedback (fine_grained.feedback.file) not there yet, `all` leaves them out and says so; asking for the table
# itself then names the missing file.
FEEDBACK_FILES = [f for f in (FINE_GRAINED.feedback.file, FINE_GRAINED.feedback.completeness_file) if f] if FINE_GRAINED else []
FINE_GRAINED_TARGETS = (
    ["results/table_fine_grained.csv", "results/fine_grained_reward_models.csv", "results/fine_grained/annotation.html"]
    if FINE_GRAINED is not None and FINE_GRAINED_ROWS and all(os.path.exists(f) for f in FEEDBACK_FILES)
    else []
)
if FINE_GRAINED is not None and not all(os.path.exists(f) for f in FEEDBACK_FILES):
    print(f"fine_grained: {', '.join(f for f in FEEDBACK_FILES if not os.path.exists(f))} not there yet (people's "
          "feedback, fine_grained.feedback.file): `all` leaves out results/table_fine_grained.csv", file=sys.stderr)
