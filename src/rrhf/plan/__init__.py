"""The plan of a run, above the stages: the setting grammar, the tables' rows, the replicates, every path
(:mod:`rrhf.plan.paths`), every check made before the first job, each rule's resources and GPU memory, and what a
study is to it (:mod:`rrhf.plan.study`). Imports neither torch nor transformers, so Snakemake starts quickly."""
