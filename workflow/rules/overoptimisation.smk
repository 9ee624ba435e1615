# The over-optimisation study (config key `overoptimisation`; rrhf.studies.overoptimisation): proxy and gold
# reward against sqrt(KL(pi || rho)) for best-of-n, optimisers along training and evaluated settings.

localrules:
    overoptimisation,
    plot_overoptimisation,


rule overoptimisation:
    input:
        unpack(lambda wildcards: OVEROPTIMISATION.rule_inputs(wildcards.replicate)),
    output:
        table=report(
            paths.OVEROPTIMISATION(),
            caption="../report/overoptimisation.rst",
            category=CATEGORY["rewards"],
            labels={"figure": "Over-optimisation", "format": "csv (download)"},
        ),
    params:
        best_of=lambda wildcards: OVEROPTIMISATION.block.best_of,
        curves=lambda wildcards: OVEROPTIMISATION.inputs(wildcards.replicate)["curves"],
        points=lambda wildcards: OVEROPTIMISATION.inputs(wildcards.replicate)["points"],
    log:
        paths.log_file("overoptimisation", paths.OVEROPTIMISATION, "overoptimisation"),
    conda:
        ENV
    script:
        "../scripts/overoptimisation.py"


rule plot_overoptimisation:
    input:
        table=paths.OVEROPTIMISATION(),
    output:
        figure=report(
            paths.OVEROPTIMISATION_FIGURE(),
            caption="../report/overoptimisation.rst",
            category=CATEGORY["rewards"],
            labels={"figure": "Over-optimisation", "format": "png"},
        ),
    log:
        paths.log_file("overoptimisation", paths.OVEROPTIMISATION_FIGURE, "plot"),
    conda:
        ENV
    script:
        "../scripts/plot_overoptimisation.py"
