"""What the report of a run shows (the report's rules in workflow/rules/report.smk and findings.smk): its tables
and their titles, its categories, every page and figure `all` makes beside the tables' CSVs, and the tables
results/summary.md gathers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rrhf.plan import paths
from rrhf.plan.table_rows import TABLES, report_rows

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

REPORT_TABLES = ["table2", "table5", "table6", "table7"]
REPORT_EXAMPLES = 3  # test prompts shown per table on its generations page
# Report categories, numbered: the report lists them in alphabetical order.
CATEGORY = {"tables": "1. Tables", "curves": "2. Training curves", "rewards": "3. Rewards",
            "generations": "4. Generations", "human": "5. Human evaluation"}
# Each table's title (rrhf.plan.table_rows.TABLES), and the prompt formats' table (config/real.yaml).
TABLE_TITLES = {name: table.title for name, table in TABLES.items() if table.title} | {
    "prompt_formats": "Prompt formats: the untrained policy's greedy replies, prompts read as raw HH text and "
    "through its chat template",
}


def table_label(table: str) -> str:
    """A table's short name ("Table 6"), for labels and titles."""
    return TABLE_TITLES[table].split(":")[0]


def evaluated_tables(plan: "Plan") -> list[str]:
    """The report's tables whose rows are evaluated policies or replies (Table 5's rows score test pairs)."""
    return [table for table in ("table2", "table6", "table7") if plan.tables.get(table)]


def loss_curve_file(model_dir: str) -> str:
    """The training-curve figure of a trained model (replicate 0's)."""
    trained = paths.TRAINED_MODEL.parse(model_dir)
    return paths.LOSS_CURVE(policy=trained["policy"], setting=trained["setting"])


def report_files(plan: "Plan") -> list[str]:
    """Every file the report shows beyond the tables' CSVs (rule all makes them): each table's page, every
    trained model's training curves, each table's training and evaluation rewards, its generations page and,
    over replicates, its means with their intervals."""
    evaluated = evaluated_tables(plan)
    rows = {table: report_rows(plan, table) for table in REPORT_TABLES}
    training = [table for table in evaluated if any(row["training"] for row in rows[table])]
    return [
        *(paths.TABLE_PAGE(table=table) for table in REPORT_TABLES),
        *sorted({loss_curve_file(row["model_dir"]) for table in REPORT_TABLES for row in rows[table]
                 if row["model_dir"]}),
        *(paths.TRAINING_REWARDS_FIGURE(table=table) for table in training),
        *(paths.EVALUATION_REWARDS_FIGURE(table=table) for table in evaluated),
        *(paths.GENERATIONS_PAGE(table=table) for table in evaluated),
        *(paths.INTERVALS_FIGURE(table=table) for table in REPORT_TABLES
          if plan.replicates.count > 1 and plan.tables.get(table)),
    ]


def summary_tables(plan: "Plan", targets: list[str]) -> list[str]:
    """The tables results/summary.md shows: the report's, Table 3 where `all` makes it (``targets``), and the
    prompt formats of a policy read through its chat template (config/real.yaml)."""
    tables = [table for table in REPORT_TABLES if plan.tables.get(table)]
    return tables + [table for table, path in (("table3", paths.TABLE(table="table3")),
                                               ("prompt_formats", str(paths.PROMPT_FORMATS))) if path in targets]
