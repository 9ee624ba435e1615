from rrhf.io import setup_logging
from rrhf.studies.fine_grained.table import reward_model_table

setup_logging(snakemake.log[0]).info(
    "\n%s", reward_model_table([f"{path}/metrics.json" for path in snakemake.input.models], snakemake.params.kinds,
                               snakemake.params.replicates, snakemake.output.table).to_string(index=False))
