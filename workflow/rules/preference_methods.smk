# RRHF's successors (config key `methods`; rrhf.studies.preference_methods, docs/methods.md): {method}@{setting}
# trains the policy with DPO, R-DPO, IPO, SLiC-HF, SimPO, KTO or ORPO on the pairs (KTO: labelled replies) made
# from a named setting's training set, with rho's log-probabilities of every reply computed once beforehand; the
# model is evaluated like any row.
from rrhf.studies.preference_methods.study import EXAMPLES, REFERENCE_LOGPROBS, training_benchmarks


localrules:
    method_examples,


rule method_examples:
    input:
        scored=lambda wildcards: PLAN.scored_file(wildcards.policy, wildcards.setting, wildcards.replicate),
    output:
        examples=EXAMPLES,
    params:
        pairs=METHODS.block.pairs if METHODS else None,
        kto_threshold=METHODS.block.kto_threshold if METHODS else None,
    log:
        paths.log_file("method_examples", EXAMPLES),
    wildcard_constraints:
        setting=names_pattern(PLAN.settings),
        data="pairs|labels",
    conda:
        ENV
    script:
        "../scripts/method_examples.py"


rule reference_logprobs:
    input:
        examples=EXAMPLES,
        reference=policy_input,
    output:
        reference=REFERENCE_LOGPROBS,
    params:
        reference=policy_path,
        settings={"max_length": PLAN.rrhf.training.max_length, "batch_size": PLAN.rrhf.training.batch_size,
                  "max_tokens_per_forward": PLAN.rrhf.max_tokens_per_forward,
                  "prompt_sharing": PLAN.rrhf.prompt_sharing},
        device=config["device"],
    log:
        paths.log_file("reference_logprobs", REFERENCE_LOGPROBS),
    benchmark:
        paths.benchmark_file("reference_logprobs", REFERENCE_LOGPROBS)
    wildcard_constraints:
        setting=names_pattern(PLAN.settings),
        data="pairs|labels",
    threads: threads_of("reference_logprobs")
    resources:
        **resources_of("reference_logprobs"),
    conda:
        ENV
    script:
        "../scripts/reference_logprobs.py"


rule train_preference_method:
    input:
        unpack(lambda wildcards: METHODS.inputs(wildcards.policy, wildcards.setting, wildcards.replicate)),
        policy=policy_input,
    output:
        model=directory(paths.TRAINED_MODEL()),
    params:
        policy=policy_path,
        method=lambda wildcards: METHODS.method_for(wildcards.setting),
        rrhf=lambda wildcards: PLAN.with_seed(config["rrhf"], "training", wildcards.replicate),
        precision=config["precision"],
        accelerate_config=PLAN.accelerate_config,
    log:
        paths.log_file("train_preference_method", paths.TRAINED_MODEL),
    benchmark:
        paths.benchmark_file("train_preference_method", paths.TRAINED_MODEL)
    wildcard_constraints:
        setting=trained_by_pattern("train_preference_method", PLAN.settings),
    threads: threads_of("train_preference_method")
    resources:
        **resources_of("train_preference_method"),
    conda:
        ENV
    script:
        "../scripts/train_preference_method.py"


# The methods table (results/table_methods.csv; `make methods`, not in `all`): each row's evaluation in every
# replicate, and the benchmark files of the jobs that trained its model.
METHOD_ROWS = labelled_rows(PLAN, "table_methods")


localrules:
    table_methods,


rule table_methods:
    input:
        metrics=[PLAN.evaluation_file(row["model"], row["setting"], "metrics.json", r)
                 for r in REPLICATES for row in METHOD_ROWS],
        benchmarks=[path for r in REPLICATES for row in METHOD_ROWS
                    for path in training_benchmarks(PLAN, row["model"], row["setting"], r)],
    output:
        table=report(
            paths.TABLE(table="table_methods"),
            caption="../report/table_methods.rst",
            category=CATEGORY["tables"],
            labels={"table": "Methods", "format": "csv (download)"},
        ),
    params:
        rows=[{"policy": row["policy"], "setting": row["setting"],
               "benchmarks": [training_benchmarks(PLAN, row["model"], row["setting"], r) for r in REPLICATES]}
              for row in METHOD_ROWS],
        replicates=len(REPLICATES),
    log:
        paths.log_file("tables", name="table_methods"),
    conda:
        ENV
    script:
        "../scripts/table_methods.py"


# The over-optimisation study (config `overoptimisation`) with every method of the methods table as a point
# (replicate 0; `make methods`): results/overoptimisation_methods.csv and its figure.
localrules:
    overoptimisation_methods,
    plot_overoptimisation_methods,


rule overoptimisation_methods:
    input:
        unpack(lambda wildcards: OVEROPTIMISATION.rule_inputs(0)),
        method_points=lambda wildcards: list(METHODS.points().values()),
    output:
        table=paths.OVEROPTIMISATION_METHODS(),
    params:
        best_of=lambda wildcards: OVEROPTIMISATION.block.best_of,
        curves=lambda wildcards: OVEROPTIMISATION.inputs(0)["curves"],
        points=lambda wildcards: {**OVEROPTIMISATION.inputs(0)["points"], **METHODS.points()},
    log:
        paths.log_file("overoptimisation", name="overoptimisation_methods"),
    conda:
        ENV
    script:
        "../scripts/overoptimisation.py"


rule plot_overoptimisation_methods:
    input:
        table=paths.OVEROPTIMISATION_METHODS(),
    output:
        figure=report(
            paths.OVEROPTIMISATION_METHODS_FIGURE(),
            caption="../report/overoptimisation.rst",
            category=CATEGORY["rewards"],
            labels={"figure": "Over-optimisation, with the methods", "format": "png"},
        ),
    log:
        paths.log_file("overoptimisation", name="plot_methods"),
    conda:
        ENV
    script:
        "../scripts/plot_overoptimisation.py"
