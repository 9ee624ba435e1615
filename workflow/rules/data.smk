# Data stage: every source becomes resources/data/{dataset}/{split}.parquet
# (prompt_id, prompt, chosen, rejected).


rule prepare_dataset:
    input:
        source=dataset_source_files,
    output:
        data=paths.DATASET(),
    params:
        spec=lambda wildcards: config["datasets"][wildcards.dataset],
    log:
        paths.log_file("prepare_dataset", paths.DATASET),
    conda:
        ENV
    script:
        "../scripts/prepare_dataset.py"
