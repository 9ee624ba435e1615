"""rrhf: library behind the rrhf-workflow Snakemake pipeline (RRHF, Yuan et al. 2023)."""

__version__ = "0.1.0"
