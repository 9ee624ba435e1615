# RRHF's successors (config key `methods`; docs/methods.md): {method}@{setting} trains the policy with DPO, R-DPO,
# IPO, SLiC-HF, SimPO, KTO or ORPO on the pairs (KTO: labelled replies) made from a named setting's training set,
# with rho's log-probabilities of every reply computed once beforehand; the model is evaluated like any row.
from types import SimpleNamespace

from rrhf.studies.preference_methods.study import method_for, method_inputs, method_points, training_benchmarks
from rrhf.plan.settings import method_pattern


localrules:
    method_examples,


rule method_examples:
    input:
        scored=lambda wildcards: PLAN.scored_file(wildcards.policy, wildcards.setting, wildcards.replicate),
    output:
        examples="results/{replicate}methods/{policy}/{setting}/{data}.parquet",
    params:
        pairs=PLAN.methods.pairs if PLAN.methods else None,
        kto_threshold=PLAN.methods.kto_threshold if PLAN.methods else None,
    log:
        "logs/methods/{replicate}{policy}_{setting}_{data}.log",
    wildcard_constraints:
        setting=names_pattern(PLAN.settings),
        data="pairs|labels",
    conda:
        ENV
    script:
        "../scripts/method_examples.py"


rule reference_logprobs:
    input:
        examples="results/{replicate}methods/{policy}/{setting}/{data}.parquet",
        reference=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
    output:
        reference="results/{replicate}methods/{policy}/{setting}/{data}_reference.parquet",
    params:
        reference=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        settings={"max_length": PLAN.rrhf.training.max_length, "batch_size": PLAN.rrhf.training.batch_size,
                  "max_tokens_per_forward": PLAN.rrhf.max_tokens_per_forward,
                  "prompt_sharing": PLAN.rrhf.prompt_sharing},
        device=config["device"],
    log:
        "logs/methods/{replicate}{policy}_{setting}_{data}_reference.log",
    benchmark:
        "logs/benchmarks/methods/{replicate}{policy}_{setting}_{data}_reference.tsv"
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
        unpack(lambda wildcards: method_inputs(PLAN, wildcards.policy, wildcards.setting, wildcards.replicate)),
        policy=lambda wildcards: PLAN.model_input(wildcards.policy, wildcards.replicate),
    output:
        model=directory("results/{replicate}models/{policy}/{setting}"),
    params:
        policy=lambda wildcards: PLAN.model_path(wildcards.policy, wildcards.replicate),
        method=lambda wildcards: method_for(PLAN, wildcards.setting),
        rrhf=lambda wildcards: PLAN.with_seed(config["rrhf"], "training", wildcards.replicate),
        precision=config["precision"],
        accelerate_config=PLAN.accelerate_config,
    log:
        "logs/train_preference_method/{replicate}{policy}_{setting}.log",
    benchmark:
        "logs/benchmarks/train_preference_method/{replicate}{policy}_{setting}.tsv"
    wildcard_constraints:
        setting=method_pattern(PLAN.settings),
    threads: threads_of("train_preference_method")
    resources:
        **resources_of("train_preference_method"),
    conda:
        ENV
    script:
        "../scripts/train_preference_method.py"


# The methods table (results/table_methods.csv; `make methods`, not in `all`): each row's evaluation in every
# replicate, and the benchmark files of the jobs that trained its model.
METHOD_ROWS = [{"model": PLAN.policies[row.policy], "policy": PLAN.display_name(PLAN.policies[row.policy]),
                "setting": row.setting} for row in PLAN.tables.get("table_methods", [])]


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
            "results/table_methods.csv",
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
        "logs/tables/table_methods.log",
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
        unpack(lambda wildcards: overoptimisation_input(SimpleNamespace(replicate=""))),
        method_points=lambda wildcards: list(method_points(PLAN).values()),
    output:
        table="results/overoptimisation_methods.csv",
    params:
        best_of=lambda wildcards: PLAN.overoptimisation.best_of,
        curves=lambda wildcards: PLAN.overoptimisation_inputs(0)["curves"],
        points=lambda wildcards: {**PLAN.overoptimisation_inputs(0)["points"], **method_points(PLAN)},
    log:
        "logs/overoptimisation/overoptimisation_methods.log",
    conda:
        ENV
    script:
        "../scripts/overoptimisation.py"


rule plot_overoptimisation_methods:
    input:
        table="results/overoptimisation_methods.csv",
    output:
        figure=report(
            "results/figures/overoptimisation_methods.png",
            caption="../report/overoptimisation.rst",
            category=CATEGORY["rewards"],
            labels={"figure": "Over-optimisation, with the methods", "format": "png"},
        ),
    log:
        "logs/overoptimisation/plot_methods.log",
    conda:
        ENV
    script:
        "../scripts/plot_overoptimisation.py"
