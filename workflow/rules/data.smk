# Data stage: every source becomes resources/data/{dataset}/{split}.parquet
# (prompt_id, prompt, chosen, rejected).


rule prepare_dataset:
    input:
        source=dataset_source_files,
    output:
        data="resources/data/{dataset}/{split}.parquet",
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    log:
        "logs/prepare_dataset/{dataset}_{split}.log",
    conda:
        ENV
    script:
        "../scripts/prepare_dataset.py"
