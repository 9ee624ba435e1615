# A target whose path names a patterned setting that cannot exist (IP-0, OP-x, best-of-0, ...) would only get
# Snakemake's "No rule to produce"; this rule matches exactly those paths and stops, before any job, saying why.


rule impossible_setting:
    input:
        lambda wildcards: explain_target(f"results/{wildcards.path}"),
    output:
        "results/{path}",
    log:
        "logs/impossible_setting/{path}.log",
    wildcard_constraints:
        path=rf"{FOLDER_PATTERN}(?:eval|models|scored|samples|rewards)/[^/]+/{IMPOSSIBLE_SETTING_PATTERN}(?:[/.].*)?",
