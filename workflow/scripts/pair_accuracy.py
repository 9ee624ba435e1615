from rrhf.evaluation.pair_accuracy import pair_accuracy

pair_accuracy(snakemake.input.test_data, snakemake.params.scorer, snakemake.params.model, snakemake.output.accuracy,
              snakemake.params.scoring, snakemake.params.length_penalty, device=snakemake.params.device,
              dtype=snakemake.params.dtype, log_path=snakemake.log[0])
