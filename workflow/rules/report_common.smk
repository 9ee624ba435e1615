# What the report shows of each table (report.smk's rules; its items and the files rule all makes), and the
# report's constants: helpers only, so that `snakemake --lint` finds no rule beside a function.

REPORT_TABLES = ["table2", "table5", "table6", "table7"]
# Tables whose rows are evaluated policies or replies (Table 5's rows score test pairs instead).
EVALUATED_TABLES = [table for table in ("table2", "table6", "table7") if TABLES.get(table)]
REPORT_EXAMPLES = 3  # test prompts shown per table on its generations page
# Report categories, numbered: the report lists them in alphabetical order.
CATEGORY = {"tables": "1. Tables", "curves": "2. Training curves", "rewards": "3. Rewards",
            "generations": "4. Generations"}
TABLE_TITLES = {
    "table2": "Table 2: the main comparison (PPL, reward, gold reward)",
    "table5": "Table 5: share of test pairs whose chosen reply a scorer prefers",
    "table6": "Table 6: training-data ablation (evaluation and training-set reward statistics)",
    "table7": "Table 7: ranking-loss ablation",
}


def table_label(table):
    """A table's short name ("Table 6"), for labels and titles."""
    return TABLE_TITLES[table].split(":")[0]


def report_rows(table):
    """A table's rows, each with its `policy` and `setting` (as the table's CSV labels them), a short figure
    `label` (the tables.yaml role and the setting), its test `generations` (None for Table 5's reward-model row),
    `model_dir` (the trained model; None for an untrained policy, best-of-n or the dataset's replies) and
    `training` ((path, "scored" | "online") of its training rewards: the scored training set, or for an online
    row the model folder with the replies sampled during training; None for a row that trains on none)."""
    rows = []
    for row in TABLES.get(table, []):
        if "responses" in row:
            label = {"chosen": "good responses", "rejected": "bad responses"}[row["responses"]]
            rows.append({"policy": "dataset", "setting": label,
                         "label": f"dataset: {label}", "model_dir": None, "training": None,
                         "generations": f"results/eval/dataset/{row['responses']}/generations.parquet"})
            continue
        if "reward_model" in row:
            rows.append({"policy": MODELS[REWARD_MODEL]["display_name"], "setting": "reward model",
                         "label": "reward model", "model_dir": None, "training": None, "generations": None})
            continue
        model, setting = POLICIES[row["policy"]], row["setting"]
        trained = trained_setting(setting) if rrhf_setting(setting) or setting == "PPO" else None
        training = None
        if rrhf_setting(setting):
            training = (scored_file(model, setting), "scored") if scored_file(model, setting) else \
                (f"results/models/{model}/{setting}", "online")
        label = f"{row['policy']} {setting}" + (f" (= {trained})" if trained and trained != setting else "")
        rows.append({"policy": MODELS[model]["display_name"], "setting": setting, "label": label, "training": training,
                     "model_dir": f"results/models/{model}/{trained}" if trained else None,
                     "generations": evaluation_file(model, setting, "generations.parquet")})
    return rows


def loss_curve_file(model_dir):
    model, setting = model_dir.removeprefix("results/models/").split("/")
    return f"results/figures/loss_curve_{model}_{setting}.png"


def training_about(setting):
    """The config behind a trained model, for its caption: the setting and the training block it used."""
    if setting == "PPO":
        return {"ppo": config["ppo"]}
    about = {"setting": setting_spec(setting), "rank_weight": setting_rank_weight(setting), "rrhf": config["rrhf"]}
    if iteration_number(setting) or online_schedule(setting):
        about["resampling"] = RESAMPLING
    return about


TRAINING_TABLES = [table for table in EVALUATED_TABLES if any(row["training"] for row in report_rows(table))]
# Every file the report shows beyond the tables' CSVs; rule all makes them.
REPORT_FILES = [
    *(f"results/report/{table}.html" for table in REPORT_TABLES),
    *sorted({loss_curve_file(row["model_dir"]) for table in REPORT_TABLES for row in report_rows(table)
             if row["model_dir"]}),
    *(f"results/figures/train_rewards_{table}.png" for table in TRAINING_TABLES),
    *(f"results/figures/eval_rewards_{table}.png" for table in EVALUATED_TABLES),
    *(f"results/report/generations_{table}.html" for table in EVALUATED_TABLES),
]
