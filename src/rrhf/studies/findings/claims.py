"""The paper's claims as data (config/findings.yaml), read and checked against the tables before any job.

A claim compares two rows of the tables on one metric in a claimed direction::

    - id: dp-raises-reward
      claim: RRHF on diverse-beam samples raises Alpaca's reward
      source: Table 2, Section 4.2
      metric: reward
      row: {policy: Alpaca, setting: DP}
      versus: {policy: Alpaca, setting: none}
      direction: higher

``row`` and ``versus`` are written like the rows of config/tables.yaml: ``{policy, setting}`` (a setting as the
tables list it: ``OP-32`` is found under the name the config runs it as), ``{responses: chosen|rejected}`` (the
dataset's own replies) or ``{reward_model: true}`` (Table 5). Each must be a row of a table that has the metric
(:data:`METRICS`). ``direction`` says whether ``row`` minus ``versus`` is claimed to be ``higher`` or
``lower`` than zero, or, with the optional ``than``, than that value in the metric's units (e.g. ``log_ppl``
lower than 0.2: the perplexity rises by less than e^0.2 - 1 = 22 %). rrhf.studies.findings.verdicts measures each claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rrhf.plan.table_rows import TableRow, row_file
from rrhf.studies.human_evaluation.study import side_label

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

# metric -> (the tables whose rows have it, the file of a row it is read from).
METRICS = {
    "reward": (("table2", "table6", "table7", "table_fine_grained", "table_methods"), "generations.parquet"),
    "gold_reward": (("table2", "table6", "table7", "table_fine_grained", "table_methods"), "generations.parquet"),
    "ppl": (("table2", "table6", "table7", "table_fine_grained", "table_methods"), "metrics.json"),
    # Each reply's log-perplexity under the evaluation LM (its NLL per token; generations.parquet's nll / n_tokens),
    # paired over test prompts: the per-prompt form of ppl (an empty reply has none, and its prompt is left out).
    "log_ppl": (("table2", "table6", "table7", "table_methods"), "generations.parquet"),
    "repetition": (("table2", "table6", "table7"), "metrics.json"),
    "accuracy": (("table5",), "pair_accuracy.json"),
    "train_reward_mean": (("table6",), "scored"),
    "train_reward_std": (("table6",), "scored"),
    "train_reward_max": (("table6",), "scored"),
    # The fine-grained evaluation's per-reply measures (rrhf.studies.fine_grained.evaluation), paired over test prompts.
    "relevance_error_rate": (("table_fine_grained",), "segments.parquet"),
    "factual_error_rate": (("table_fine_grained",), "segments.parquet"),
    "completeness": (("table_fine_grained",), "segments.parquet"),
    # Table 3's human evaluation: the share of judgments preferring row minus the share preferring versus (a
    # fraction in [-1, 1]), over the comparison's counted pairs in each replicate's judged.parquet.
    "net_win": (("table3",), "judged.parquet"),
}
DIRECTIONS = ("higher", "lower")
CLAIM_KEYS = {"id", "claim", "source", "metric", "row", "versus", "direction"}
OPTIONAL_KEYS = {"than"}  # the value row - versus is claimed higher or lower than (default 0)


@dataclass(frozen=True)
class Claim:
    """One claim: ``row`` minus ``versus`` on ``metric`` is claimed ``higher`` or ``lower`` than zero."""

    id: str
    claim: str
    source: str
    metric: str
    row: TableRow
    versus: TableRow
    direction: str
    than: float = 0.0


def describe(row: dict[str, Any] | TableRow) -> str:
    """A row as a claim names it: "Alpaca DP", "dataset chosen", "reward model"."""
    if isinstance(row, TableRow):
        row = {"policy": row.policy, "setting": row.listed_setting, "responses": row.responses,
               "reward_model": row.reward_model}
    if row.get("responses"):
        return f"dataset {row['responses']}"
    if row.get("reward_model"):
        return "reward model"
    return f"{row.get('policy')} {row.get('setting')}"


def find_row(plan: "Plan", written: Any, tables: tuple[str, ...]) -> TableRow | None:
    """The first row of ``tables`` that ``written`` (a claim's row, as tables.yaml writes rows) names."""
    if not isinstance(written, dict):
        return None
    for table in tables:
        for row in plan.tables.get(table, []):
            if names(written, row):
                return row
    return study_row(plan, written) if "table2" in tables else None


def names(written: dict[str, Any], row: TableRow) -> bool:
    """Whether ``written`` (a row as tables.yaml writes it) names ``row``."""
    if written.get("responses") is not None:
        return row.responses == written["responses"] and set(written) == {"responses"}
    if written.get("reward_model") is True:
        return row.reward_model and set(written) == {"reward_model"}
    return set(written) == {"policy", "setting"} and row.policy == written["policy"] \
        and written["setting"] in (row.listed_setting, row.setting)


def comparison_sides(plan: "Plan", row: Any, versus: Any) -> tuple[TableRow, TableRow] | None:
    """(row, versus) as the two sides of a Table 3 comparison, in either order; None when Table 3 compares no
    such two rows (a claim on ``net_win``)."""
    if not isinstance(row, dict) or not isinstance(versus, dict):
        return None
    for entry in plan.tables.get("table3", []):
        if names(row, entry) and names(versus, entry.versus):
            return entry, entry.versus
        if names(row, entry.versus) and names(versus, entry):
            return entry.versus, entry
    return None


def study_row(plan: "Plan", written: dict[str, Any]) -> TableRow | None:
    """A point of the over-optimisation study (config ``overoptimisation.points``: an evaluated setting of its
    policy) as a row claims on evaluation metrics may name, e.g. {policy: Alpaca, setting: PPO-noKL}."""
    study = plan.studies.get("overoptimisation")
    study = study.block if study is not None else None
    if study is None or set(written) != {"policy", "setting"} or written["policy"] != study.policy \
            or written["setting"] not in study.points:
        return None
    setting = written["setting"]
    return TableRow("overoptimisation", study.points.index(setting) + 1, study.policy, setting, setting)


def read_claims(plan: "Plan", path: str | Path) -> tuple[list[Claim], list[str]]:
    """(claims, problems) of a findings file; each problem names the file and the claim (its id, or its
    number), e.g. a row no table has, a metric the row's tables do not report, an id given twice."""
    name = Path(path).name
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as error:
        return [], [f"findings ({path}): cannot be read as YAML ({error})"]
    if not isinstance(data, list) or not data:
        return [], [f"findings ({path}): expected a non-empty list of claims"]
    claims, problems, seen = [], [], set()
    for number, entry in enumerate(data, start=1):
        where = f"{name}: claim {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: {entry!r} is not a mapping of {sorted(CLAIM_KEYS)}")
            continue
        where = f"{name}: claim {entry.get('id', number)!r}"
        missing, unknown = CLAIM_KEYS - set(entry), set(entry) - CLAIM_KEYS - OPTIONAL_KEYS
        if missing or unknown:
            parts = ([f"missing {sorted(missing)}"] if missing else []) + \
                ([f"unknown {sorted(unknown)}"] if unknown else [])
            problems.append(f"{where}: " + "; ".join(parts))
            continue
        if entry["id"] in seen:
            problems.append(f"{where}: id given twice")
        seen.add(entry["id"])
        if entry["metric"] not in METRICS:
            problems.append(f"{where}: metric {entry['metric']!r} is not one of {sorted(METRICS)}")
            continue
        if entry["direction"] not in DIRECTIONS:
            problems.append(f"{where}: direction {entry['direction']!r} is not one of {list(DIRECTIONS)}")
            continue
        than = entry.get("than", 0.0)
        if isinstance(than, bool) or not isinstance(than, (int, float)):
            problems.append(f"{where}: than {than!r} is not a number (the value row - versus is claimed "
                            f"{entry['direction']} than)")
            continue
        tables, source = METRICS[entry["metric"]]
        if source == "judged.parquet":  # a comparison of Table 3: row and versus are its two sides
            sides = comparison_sides(plan, entry["row"], entry["versus"])
            if sides is None:
                problems.append(f"{where}: table3 has no comparison of {entry['row']!r} with {entry['versus']!r} "
                                f"(metric {entry['metric']})")
            else:
                claims.append(Claim(str(entry["id"]), str(entry["claim"]), str(entry["source"]), entry["metric"],
                                    *sides, entry["direction"], float(than)))
            continue
        rows = []
        for key in ("row", "versus"):
            row = find_row(plan, entry[key], tables)
            if row is None:
                study = " nor a point of `overoptimisation`" if "table2" in tables else ""
                problems.append(f"{where}: {key} {entry[key]!r} is no row of {', '.join(tables)}{study} (metric "
                                f"{entry['metric']}); rows are written as in config/tables.yaml (with another "
                                "tables file, point `findings` at claims about its rows, or set it to null)")
            elif source == "scored" and plan.scored_file(plan.policies[row.policy], row.setting) is None:
                problems.append(f"{where}: {key} {describe(entry[key])} has no fixed training set (an online "
                                f"row), so no {entry['metric']}")
            rows.append(row)
        if None in rows:
            continue
        if rows[0] == rows[1]:
            problems.append(f"{where}: row and versus are the same row")
            continue
        claims.append(Claim(str(entry["id"]), str(entry["claim"]), str(entry["source"]), entry["metric"],
                            rows[0], rows[1], entry["direction"], float(than)))
    return claims, problems


def claim_file(plan: "Plan", row: TableRow, metric: str, replicate: int | str = 0) -> str:
    """The file a row's ``metric`` is read from in a replicate: its evaluation's generations.parquet,
    metrics.json or pair_accuracy.json, or its scored training set."""
    source = METRICS[metric][1]
    if source == "scored":
        return plan.scored_file(plan.policies[row.policy], row.setting, replicate)
    if source == "judged.parquet":
        return plan.studies["human_evaluation"].file(source, replicate)
    if source == "segments.parquet":
        return plan.studies["fine_grained"].evaluation(plan.policies[row.policy], row.setting, source, replicate)
    return row_file(plan, row, source, replicate)


def claims_for_rule(plan: "Plan", claims: list[Claim]) -> list[dict[str, Any]]:
    """The claims as the findings rule passes them to rrhf.studies.findings.verdicts: labels, and per replicate the
    [row's file, versus's file]."""
    human_replicates = plan.studies["human_evaluation"].replicates if plan.studies.get("human_evaluation") else None
    return [{"id": c.id, "claim": c.claim, "source": c.source, "metric": c.metric, "row": describe(c.row),
             "versus": describe(c.versus), "direction": c.direction, "than": c.than,
             "files": [[claim_file(plan, c.row, c.metric, r), claim_file(plan, c.versus, c.metric, r)]
                       for r in (human_replicates() if c.metric == "net_win" else plan.replicates.numbers())],
             **({"sides": [side_label(plan, c.row), side_label(plan, c.versus)]} if c.metric == "net_win" else {})}
            for c in claims]
