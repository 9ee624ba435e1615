# How well each reward build ranks by gold, in every replicate (rrhf.evaluation.reward_builds); and the
# over-optimisation study (config key `overoptimisation`, rrhf.studies.overoptimisation.curves): proxy and gold
# reward against sqrt(KL(pi || rho)) for best-of-n, optimisers along training and evaluated settings.

localrules:
    overoptimisation,
    plot_overoptimisation,
    reward_models,


rule overoptimisation:
    input:
        unpack(overoptimisation_input),
    output:
        table=report(
            "results/{replicate}overoptimisation.csv",
            caption="../report/overoptimisation.rst",
            category=CATEGORY["rewards"],
            labels={"figure": "Over-optimisation", "format": "csv (download)"},
        ),
    params:
        best_of=lambda wildcards: PLAN.overoptimisation.best_of,
        curves=lambda wildcards: PLAN.overoptimisation_inputs(wildcards.replicate)["curves"],
        points=lambda wildcards: PLAN.overoptimisation_inputs(wildcards.replicate)["points"],
    log:
        "logs/overoptimisation/{replicate}overoptimisation.log",
    conda:
        ENV
    script:
        "../scripts/overoptimisation.py"


rule plot_overoptimisation:
    input:
        table="results/{replicate}overoptimisation.csv",
    output:
        figure=report(
            "results/{replicate}figures/overoptimisation.png",
            caption="../report/overoptimisation.rst",
            category=CATEGORY["rewards"],
            labels={"figure": "Over-optimisation", "format": "png"},
        ),
    log:
        "logs/overoptimisation/{replicate}plot.log",
    conda:
        ENV
    script:
        "../scripts/plot_overoptimisation.py"


rule reward_models:
    input:
        models=[PLAN.model_path(name, r) for r, name in REWARD_BUILDS],
    output:
        table="results/reward_models.csv",
    params:
        replicates=[r for r, _ in REWARD_BUILDS],
        names=[name for _, name in REWARD_BUILDS],
    log:
        "logs/reward_models/reward_models.log",
    conda:
        ENV
    script:
        "../scripts/reward_models.py"
