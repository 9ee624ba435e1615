# What the report shows of each table (report.smk's rules; its items and the files rule all makes), and the
# report's constants: helpers only, so that `snakemake --lint` finds no rule beside a function.

REPORT_TABLES = ["table2", "table5", "table6", "table7"]
# Tables whose rows are evaluated policies or replies (Table 5's rows score test pairs instead).
EVALUATED_TABLES = [table for table in ("table2", "table6", "table7") if PLAN.tables.get(table)]
REPORT_EXAMPLES = 3  # test prompts shown per table on its generations page
# Report categories, numbered: the report lists them in alphabetical order.
CATEGORY = {"tables": "1. Tables", "curves": "2. Training curves", "rewards": "3. Rewards",
            "generations": "4. Generations", "human": "5. Human evaluation"}
TABLE_TITLES = {
    "table2": "Table 2: the main comparison (PPL, reward, gold reward)",
    "table5": "Table 5: share of test pairs whose chosen reply a scorer prefers",
    "table6": "Table 6: training-data ablation (evaluation and training-set reward statistics)",
    "table7": "Table 7: ranking-loss ablation",
    "table3": "Table 3: human evaluation, win / tie / lose of A against B (blind pairwise judgments)",
    "table4": "Table 4: each row's reply to the same test prompts",
    "prompt_formats": "Prompt formats: the untrained policy's greedy replies, prompts read as raw HH text and "
    "through its chat template",
}


def table_label(table):
    """A table's short name ("Table 6"), for labels and titles."""
    return TABLE_TITLES[table].split(":")[0]


def summary_tables():
    """The tables results/summary.md shows: the report's, Table 3 where `all` makes it, and the prompt formats of
    a policy read through its chat template (config/real.yaml)."""
    tables = [table for table in REPORT_TABLES if PLAN.tables.get(table)]
    return tables + (["table3"] if "results/table3.csv" in HUMAN_TARGETS else []) + \
        (["prompt_formats"] if PROMPT_FORMAT_TARGETS else [])


def loss_curve_file(model_dir):
    model, setting = model_dir.removeprefix("results/models/").split("/")
    return f"results/figures/loss_curve_{model}_{setting}.png"


TRAINING_TABLES = [table for table in EVALUATED_TABLES if any(row["training"] for row in report_rows(PLAN, table))]
# Every file the report shows beyond the tables' CSVs; rule all makes them.
REPORT_FILES = [
    *(f"results/report/{table}.html" for table in REPORT_TABLES),
    *sorted({loss_curve_file(row["model_dir"]) for table in REPORT_TABLES for row in report_rows(PLAN, table)
             if row["model_dir"]}),
    *(f"results/figures/train_rewards_{table}.png" for table in TRAINING_TABLES),
    *(f"results/figures/eval_rewards_{table}.png" for table in EVALUATED_TABLES),
    *(f"results/report/generations_{table}.html" for table in EVALUATED_TABLES),
    # Over replicates, each table's means with their 95 % intervals as error bars (findings.smk).
    *(f"results/figures/intervals_{table}.png" for table in REPORT_TABLES
      if PLAN.replicates.count > 1 and PLAN.tables.get(table)),
]
