# Checks of a finished run's science (not part of `all`): does the tiny default behave like a small version of the
# paper's experiment? Fixed thresholds on one run, with their figures; PASS or FAIL per check.

localrules:
    tiny_science_checks,


rule tiny_science_checks:
    input:
        tables=expand("results/{table}.csv", table=["table2", "table5", "table6", "table7"]),
        reward_model="results/eval/reward_model/metrics.json",
        chosen="results/eval/dataset/chosen/metrics.json",
    output:
        checks="results/checks/tiny_science.txt",
    params:
        policy=lambda wildcards: alpaca_model(),
    log:
        "logs/checks/tiny_science.log",
    conda:
        ENV
    script:
        "../scripts/tiny_science_checks.py"
