from rrhf.models.importing import import_model

import_model(snakemake.params.source, snakemake.output.model, snakemake.params.prompt_format,
             log_path=snakemake.log[0])
