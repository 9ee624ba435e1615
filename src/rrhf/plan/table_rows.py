"""The rows of the paper's tables (config/tables.yaml) as typed objects, read once, and what each row needs.

:func:`read_table_rows` reads the file, :func:`table_row_problems` says what is wrong with a row, and the
functions below give what the table rules (workflow/rules/tables.smk) and the report rules
(``report.smk``) take from a row: its label, its evaluation files, its training set, its model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rrhf.plan import paths
from rrhf.plan.settings import parse_setting, setting_problem

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

# The setting kinds a table's policy rows may have (the kind of rrhf.plan.settings.Setting).
RRHF_KINDS = ("named", "iterated", "online")
EVALUATED_KINDS = (*RRHF_KINDS, "none", "ppo", "best_of_n", "fine_grained", "method")
DATASET_REPLIES = ("responses", ["chosen", "rejected"])
EVERY_OTHER_NAME = ", none, PPO, best-of-n, FG-PPO[-{variant}], {method}@{setting}"


@dataclass(frozen=True)
class Table:
    """What a table of the tables file is, declared once: its ``title`` (the report's and results/summary.md's;
    None for a table the report does not show), the setting kinds its policy rows may have, how its errors name
    the settings beyond RRHF's (``extra_names``), its rows that are not a policy (``other_rows``: key and
    values, e.g. Table 2's dataset replies), and whether its rows are comparisons (Table 3: a row and the row it
    is judged against, under ``versus``)."""

    title: str | None
    row_kinds: tuple[str, ...]
    extra_names: str = ""
    other_rows: tuple[str, list[Any]] | None = None
    comparisons: bool = False


TABLES = {
    "table2": Table("Table 2: the main comparison (PPL, reward, gold reward)",
                    (*RRHF_KINDS, "none", "ppo", "best_of_n"), ", none, PPO, best-of-n", DATASET_REPLIES),
    "table3": Table("Table 3: human evaluation, win / tie / lose of A against B (blind pairwise judgments)",
                    EVALUATED_KINDS, EVERY_OTHER_NAME, DATASET_REPLIES, comparisons=True),
    "table4": Table("Table 4: each row's reply to the same test prompts", EVALUATED_KINDS, EVERY_OTHER_NAME,
                    DATASET_REPLIES),
    "table5": Table("Table 5: share of test pairs whose chosen reply a scorer prefers",
                    (*RRHF_KINDS, "none", "ppo"), ", none, PPO", ("reward_model", [True])),
    "table6": Table("Table 6: training-data ablation (evaluation and training-set reward statistics)", RRHF_KINDS),
    "table7": Table("Table 7: ranking-loss ablation", RRHF_KINDS),
    "table_fine_grained": Table(None, ("none", "ppo", "fine_grained"), ", none, PPO, FG-PPO, FG-PPO-{variant}"),
    "table_methods": Table(None, (*RRHF_KINDS, "none", "ppo", "best_of_n", "method"),
                           ", none, PPO, best-of-n, {method}@{setting}"),
}
# How Table 2 and the report label the dataset's own replies.
RESPONSE_LABELS = {"chosen": "good responses", "rejected": "bad responses"}


@dataclass(frozen=True)
class TableRow:
    """One row of config/tables.yaml. A policy row has ``policy`` (a role of the config's ``policies``) and
    ``setting`` (as this config runs it: table_settings applied; ``listed_setting`` as the file gives it); a
    dataset row has ``responses`` (chosen or rejected); Table 5's reward-model row has ``reward_model``. A row of
    Table 3 is a comparison: the row is side A and ``versus`` side B, itself a row."""

    table: str
    number: int
    policy: str | None = None
    setting: str | None = None
    listed_setting: str | None = None
    responses: str | None = None
    reward_model: bool = False
    versus: "TableRow | None" = None

    @property
    def where(self) -> str:
        return f"{self.table} row {self.number}"


def read_table_rows(path: Path, table_settings: dict[str, str]) -> tuple[dict[str, list[TableRow]], list[str]]:
    """({table: rows}, problems) of a tables file; a row's setting is renamed by ``table_settings``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        return {}, [f"tables ({path}): cannot be read as YAML ({error})"]
    if not isinstance(data, dict):
        return {}, [f"tables ({path}): expected a mapping of table name -> list of rows, not {type(data).__name__}"]
    tables, problems = {}, []
    for table, rows in data.items():
        if table not in TABLES:
            problems.append(f"{Path(path).name}: unknown table {table!r}; expected one of {sorted(TABLES)}")
            continue
        if not isinstance(rows, list):
            problems.append(f"{Path(path).name}: {table} is a {type(rows).__name__}; expected a list of rows")
            continue
        tables[table] = []
        for number, row in enumerate(rows, start=1):
            where = f"{Path(path).name}: {table} row {number}"
            if TABLES[table].comparisons:
                if not isinstance(row, dict) or not isinstance(row.get("versus"), dict):
                    problems.append(f"{where}: {row!r} is not a comparison (a row with the row it is judged "
                                    "against under `versus`, e.g. {policy: Alpaca, setting: DP, versus: "
                                    "{responses: chosen}})")
                    continue
                versus, problems_b = table_row(table, number, row["versus"], table_settings, f"{where} versus")
                first, problems_a = table_row(table, number, {k: v for k, v in row.items() if k != "versus"},
                                              table_settings, where)
                problems += problems_a + problems_b
                if first is not None and versus is not None:
                    tables[table].append(TableRow(**{**first.__dict__, "versus": versus}))
                continue
            parsed, row_problems = table_row(table, number, row, table_settings, where)
            problems += row_problems
            if parsed is not None:
                tables[table].append(parsed)
    return tables, problems


def table_row(table: str, number: int, row: Any, table_settings: dict[str, str],
              where: str) -> tuple[TableRow | None, list[str]]:
    """(the row, problems) of one row as a tables file writes it; None when it is not a row at all."""
    known = {"policy", "setting", "responses", "reward_model"}
    if not isinstance(row, dict) or set(row) - known:
        return None, [f"{where}: {row!r} is not a row ({{policy, setting}}, {{responses}} or {{reward_model}})"]
    listed = row.get("setting")
    setting = table_settings.get(listed, listed) if listed is not None else None
    parsed = TableRow(table, number, row.get("policy"), setting, listed, row.get("responses"),
                      row.get("reward_model") is True)
    return parsed, other_row_problems(table, row, where) if "reward_model" in row or "responses" in row else []


def other_row_problems(table: str, row: dict[str, Any], where: str) -> list[str]:
    """What is wrong with a row that is not a policy (a dataset row, the reward-model row)."""
    key, values = TABLES[table].other_rows or (None, [])
    if key not in row or set(row) != {key} or row[key] not in values:
        allowed = f"a {key} row is {{{key}: one of {values}}}" if key else f"{table} has policy rows only"
        return [f"{where}: {allowed}, not {row}"]
    return []


def table_row_problems(row: TableRow, policies: dict[str, str], settings: dict[str, Any], where: str) -> list[str]:
    """What is wrong with a policy row (and a comparison's ``versus``): a role that is not a policy, a setting
    the table cannot have, a comparison of a row with itself."""
    problems = []
    if row.versus is not None:
        problems += table_row_problems(row.versus, policies, settings, f"{where} versus")
        if (row.versus.policy, row.versus.setting, row.versus.responses) == (row.policy, row.setting, row.responses):
            problems.append(f"{where}: compares a row with itself")
    if row.responses is not None or row.reward_model:
        return problems  # checked when read (other_row_problems)
    if row.policy not in policies:
        problems.append(f"{where} policy: {row.policy!r} is not one of {sorted(policies)}")
    parsed = parse_setting(row.setting, settings) if row.setting is not None else None
    if parsed is None or parsed.kind not in TABLES[row.table].row_kinds:
        reason = setting_problem(row.setting, settings) if row.setting is not None and parsed is None else None
        problems.append(f"{where} setting: {row.setting!r} is not one of {sorted(settings)}, IP-n, OP-k or "
                        f"OP-k+KL{TABLES[row.table].extra_names} (n, k whole numbers from 1)"
                        + (f": {reason}" if reason and "whole number" in reason else ""))
    return problems


def labelled_rows(plan: "Plan", table: str) -> list[dict[str, Any]]:
    """Each policy row of a table (Table 6 or 7, the fine-grained or the methods table) with the model it trains
    (``model``), its display name (``policy``), its ``setting`` and ``rank_weight`` (None for a row that is not
    RRHF)."""
    rows = []
    for row in plan.tables.get(table, []):
        model = plan.policies[row.policy]
        setting = plan.setting(row.setting)
        rows.append({"model": model, "policy": plan.display_name(model), "setting": row.setting,
                     "rank_weight": plan.rank_weight(row.setting) if setting.trains_with_rrhf else None})
    return rows


def row_file(plan: "Plan", row: TableRow, file_name: str, replicate: int | str = 0) -> str:
    """A row's evaluation file in a replicate: the dataset's good / bad replies (they change with the reward
    model and the evaluation LM), the reward model's, or a policy's evaluation."""
    if row.responses is not None:
        return paths.DATASET_REPLIES(replicate=plan.folder(replicate, "models"), source=row.responses, name=file_name)
    if row.reward_model:
        return reward_model_file(plan, file_name, replicate)
    return plan.evaluation_file(plan.policies[row.policy], row.setting, file_name, replicate)


def reward_model_file(plan: "Plan", file_name: str, replicate: int | str = 0) -> str:
    """The reward model's evaluation file in a replicate: its pair accuracy on the test pairs (models stage) or
    its agreement with the training sets' gold rewards (metrics.json: sampling stage)."""
    stage = "sampling" if file_name == "metrics.json" else "models"
    return paths.REWARD_MODEL_EVALUATION(replicate=plan.folder(replicate, stage), name=file_name)


def row_label(plan: "Plan", row: TableRow) -> dict[str, str]:
    """How a table's CSV labels a row: ``policy`` (a display name, or "dataset") and ``setting``."""
    if row.responses is not None:
        return {"policy": "dataset", "setting": RESPONSE_LABELS[row.responses]}
    if row.reward_model:
        return {"policy": plan.display_name(plan.reward_model), "setting": "reward model"}
    return {"policy": plan.display_name(plan.policies[row.policy]), "setting": row.setting}


def entries(plan: "Plan", table: str, file_name: str, replicate: int | str = 0) -> list[tuple[dict[str, str], str]]:
    """(label row, file) of each row of Table 2 (``metrics.json``) or Table 5 (``pair_accuracy.json``) in a
    replicate: the dataset's good / bad replies, the reward model, or a policy's evaluation."""
    return [(row_label(plan, row), row_file(plan, row, file_name, replicate)) for row in plan.tables.get(table, [])]


def report_rows(plan: "Plan", table: str, replicate: int | str = 0) -> list[dict[str, Any]]:
    """A table's rows as the report shows them: ``policy`` and ``setting`` (as the table's CSV labels them), a
    short figure ``label`` (the tables.yaml role and the setting), the test ``generations`` (None for Table 5's
    reward-model row), ``model_dir`` (the trained model; None for an untrained policy, best-of-n or the
    dataset's replies) and ``training`` ((path, "scored" | "online") of its training rewards: the scored
    training set, or for an online row the model folder with the replies sampled during training; None for a
    row that trains on none)."""
    rows = []
    for row in plan.tables.get(table, []):
        if row.responses is not None:
            label = RESPONSE_LABELS[row.responses]
            rows.append({"policy": "dataset", "setting": label, "label": f"dataset: {label}", "model_dir": None,
                         "training": None,
                         "generations": row_file(plan, row, "generations.parquet", replicate)})
            continue
        if row.reward_model:
            rows.append({"policy": plan.display_name(plan.reward_model), "setting": "reward model",
                         "label": "reward model", "model_dir": None, "training": None, "generations": None})
            continue
        model, setting = plan.policies[row.policy], plan.setting(row.setting)
        trained = plan.trained_setting(setting.name) if setting.is_trained else None
        training = None
        if setting.trains_with_rrhf:
            scored = plan.scored_file(model, setting.name, replicate)
            training = (scored, "scored") if scored else (plan.trained_model(model, setting.name, replicate), "online")
        label = f"{row.policy} {setting.name}" + (f" (= {trained})" if trained and trained != setting.name else "")
        rows.append({"policy": plan.display_name(model), "setting": setting.name, "label": label,
                     "training": training,
                     "model_dir": plan.trained_model(model, setting.name, replicate) if trained else None,
                     "generations": plan.evaluation_file(model, setting.name, "generations.parquet", replicate)})
    return rows


def rows_of_kind(plan: "Plan", kind: str, versus: bool = False) -> list[tuple[str, TableRow, Any]]:
    """(where, row, parsed setting) of every row of the tables whose setting is of ``kind`` (and, with ``versus``,
    of every row a comparison is judged against): what a study checks its settings in."""
    found = []
    for rows in plan.tables.values():
        for row in rows:
            for side in (row, row.versus) if versus and row.versus is not None else (row,):
                setting = parse_setting(side.setting, plan.settings) if side.setting else None
                if setting is not None and setting.kind == kind:
                    found.append((f"{plan.tables_file.name}: {row.where}", side, setting))
    return found
