from rrhf.studies.human_evaluation.judgments import import_judgments

import_judgments(snakemake.input.key, list(snakemake.input.judgments), snakemake.output.judged,
                 log_path=snakemake.log[0])
