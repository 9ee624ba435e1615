"""Judgments of a human evaluation: reading people's files (or the simulated annotators'), checking them against
the export's key (:mod:`rrhf.studies.human_evaluation.pairs`), and unblinding them.

A judgment file is either the JSON a batch page saves::

    {"export": "3f9c0a1b2c4d", "batch": 2, "annotator": "ana",
     "judgments": [{"pair_id": "pair-0007", "judgment": "left"}, ...]}

or a batch spreadsheet (``batch_{k}.csv``) with its ``judgment`` column filled in (``left``, ``tie`` or ``right``;
an empty cell is a pair not judged) and optionally ``annotator``. An annotator is the name the file gives, or the
file's name when it gives none. Every problem is reported, each with its file and line: an export other than
the key's, a pair id the key lacks or that is not in the file's batch, a judgment that is not left / tie / right,
a pair one annotator judged twice (in one file or two).

Unblinded, a judgment is an ``outcome`` for side A: ``win`` (A judged better), ``tie`` or ``lose``.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rrhf.data.annotators import AnnotatorBias
from rrhf.io import atomic_path, read_parquet, setup_logging
from rrhf.studies.human_evaluation.pairs import SHEET_COLUMNS

logger = logging.getLogger(__name__)

JUDGMENTS = ("left", "tie", "right")
OUTCOMES = ("win", "tie", "lose")
JUDGED_COLUMNS = ["file", "line", "annotator", "batch", "pair_id", "judgment"]


def _line_of(text: str, needle: str, occurrence: int) -> int:
    """The line (from 1) of the ``occurrence``-th (from 0) appearance of ``needle`` in ``text``; 0 if absent."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.find(needle, start + 1)
        if start < 0:
            return 0
    return text.count("\n", 0, start) + 1


def json_entries(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(entries, problems) of a page's JSON file: each entry {line, export, batch, annotator, pair_id,
    judgment}, its line found by the entry's pair id in the text."""
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        return [], [f"{path} line {error.lineno}: not valid JSON ({error.msg})"]
    keys = {"export", "batch", "annotator", "judgments"}
    if not isinstance(document, dict) or not keys <= set(document) or not isinstance(document["judgments"], list):
        return [], [f"{path} line 1: not a judgment file (a JSON object with {sorted(keys)}, `judgments` a list)"]
    entries, problems, seen = [], [], {}
    for number, item in enumerate(document["judgments"], start=1):
        if not isinstance(item, dict) or set(item) != {"pair_id", "judgment"}:
            problems.append(f"{path} judgments[{number}]: {item!r} is not {{pair_id, judgment}}")
            continue
        pair = str(item["pair_id"])
        line = _line_of(text, json.dumps(pair), seen.get(pair, 0))
        seen[pair] = seen.get(pair, 0) + 1
        entries.append({"line": line, "export": document["export"], "batch": document["batch"],
                        "annotator": document["annotator"], "pair_id": pair,
                        "judgment": str(item["judgment"]).strip().lower()})
    return entries, problems


def csv_entries(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """(entries, problems) of a filled batch spreadsheet; a row's line is the file's line where the row starts
    (the header is line 1; a prompt of several lines makes its row span them). Rows with no judgment are left
    out."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            missing = [c for c in ("export", "batch", "pair_id", "judgment") if c not in columns]
            if missing:
                return [], [f"{path} line 1: missing column(s) {missing}; a batch spreadsheet has {SHEET_COLUMNS}"]
            entries, start = [], reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if (row.get("judgment") or "").strip():
                    entries.append({"line": line, "export": row["export"], "batch": row["batch"],
                                    "annotator": row.get("annotator") or "", "pair_id": row["pair_id"],
                                    "judgment": row["judgment"].strip().lower()})
    except (csv.Error, UnicodeDecodeError) as error:
        return [], [f"{path}: cannot be read as CSV ({error})"]
    return entries, []


def read_judgments(paths: list[str], key: pd.DataFrame) -> pd.DataFrame:
    """Every judgment of the files ``paths`` (:data:`JUDGED_COLUMNS`), checked against the export's ``key``;
    raises ValueError listing every problem, each with its file and line."""
    export = str(key["export"].iloc[0])
    batch_of = dict(zip(key["pair_id"], key["batch"]))
    batches = list(range(1, int(key["batch"].max()) + 1))  # every batch has counted pairs (build_pairs)
    rows, problems, first_seen = [], [], {}
    for name in sorted(paths):
        path = Path(name)
        reader = json_entries if path.suffix.lower() == ".json" else csv_entries
        entries, file_problems = reader(path)
        problems += file_problems
        for entry in entries:
            where = f"{path} line {entry['line']}"
            if str(entry["export"]) != export:
                problems.append(f"{where}: export {entry['export']!r} is not this export ({export}); the file was "
                                "saved from the pages of another export (other pairs, or pairs drawn again)")
                continue
            try:
                batch = int(entry["batch"])
            except (TypeError, ValueError):
                batch = None
            if batch not in batches:
                problems.append(f"{where}: batch {entry['batch']!r} is not one of {batches}")
                continue
            pair, judgment = entry["pair_id"], entry["judgment"]
            if pair not in batch_of:
                problems.append(f"{where}: unknown pair id {pair!r} (not in this export)")
                continue
            if batch_of[pair] not in (0, batch):
                problems.append(f"{where}: pair {pair} is not in batch {batch}")
                continue
            if judgment not in JUDGMENTS:
                problems.append(f"{where}: judgment {judgment!r} for {pair} is not one of {', '.join(JUDGMENTS)}")
                continue
            annotator = str(entry["annotator"] or "").strip() or path.stem
            if (annotator, pair) in first_seen:
                problems.append(f"{where}: annotator {annotator!r} judged {pair} twice (first at "
                                f"{first_seen[annotator, pair]})")
                continue
            first_seen[annotator, pair] = where
            rows.append({"file": str(path), "line": entry["line"], "annotator": annotator, "batch": batch,
                         "pair_id": pair, "judgment": judgment})
    if problems:
        raise ValueError(f"{len(problems)} problem(s) in the judgment files:\n  " + "\n  ".join(problems))
    return pd.DataFrame(rows, columns=JUDGED_COLUMNS)


def unblind(judged: pd.DataFrame, key: pd.DataFrame) -> pd.DataFrame:
    """The judgments with their pair's comparison, sides (a, b), prompt_id and ``shared``, and ``outcome`` for
    side A (:data:`OUTCOMES`): the side judged better is A when it was shown where A was."""
    merged = judged.merge(key[["pair_id", "comparison", "a", "b", "prompt_id", "shared", "left"]], on="pair_id",
                          how="left", validate="many_to_one")
    better = merged["judgment"].map({"left": "left", "right": "right"})
    a_shown = np.where(merged["left"] == "a", "left", "right")
    merged["outcome"] = np.where(better.isna(), "tie", np.where(better == a_shown, "win", "lose"))
    return merged.drop(columns="left")


def simulated_judgments(key: pd.DataFrame, batch: int, annotators: dict[str, Any], seed: int) -> dict[str, Any]:
    """Annotator ``batch``'s judgment file, as its page would save it, judged by the gold reward (the
    ``simulated_annotators`` block): the left reply's gold (plus bias) minus the right one's, plus this
    annotator's noise, is a tie below ``tie_margin``, else the higher side wins."""
    mine = key[key["shared"] | (key["batch"] == batch)].sort_values("pair_id")
    if mine[["a_gold_reward", "b_gold_reward"]].isna().any().any():
        raise ValueError("simulated annotators judge by the gold reward, and this dataset has none; set "
                         "human_evaluation.judgments to a folder of people's judgment files")
    generator = np.random.default_rng([seed, batch])
    spread = annotators["noise"] * math.exp(annotators["noise_spread"] * generator.standard_normal())
    bias = AnnotatorBias.coerce(annotators.get("annotator_bias") or None)
    utility = {side: mine[f"{side}_gold_reward"].to_numpy(float) + np.array([bias.of(reply) for reply in
                                                                             mine[f"{side}_response"]])
               for side in ("a", "b")}
    a_minus_b = utility["a"] - utility["b"] + generator.normal(0.0, 1.0, len(mine)) * spread
    left_minus_right = np.where(mine["left"] == "a", a_minus_b, -a_minus_b)
    tied = (np.abs(left_minus_right) < annotators["tie_margin"]) | (left_minus_right == 0)
    verdicts = np.where(tied, "tie",
                        np.where(left_minus_right > 0, "left", "right"))
    return {"export": str(key["export"].iloc[0]), "batch": batch, "annotator": f"simulated-{batch}",
            "judgments": [{"pair_id": pair, "judgment": str(verdict)} for pair, verdict in
                          zip(mine["pair_id"], verdicts)]}


def simulate_annotators(key_path: str, annotators: dict[str, Any], seed: int, outputs: list[str],
                        log_path: str | None = None) -> None:
    """Write each simulated annotator's judgment file (``outputs[k-1]`` for batch k)."""
    setup_logging(log_path)
    key = read_parquet(key_path, ["pair_id", "batch", "shared", "left", "a_gold_reward", "b_gold_reward"])
    for batch, output in enumerate(outputs, start=1):
        document = simulated_judgments(key, batch, annotators, seed)
        with atomic_path(output) as path:
            Path(path).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        counts = pd.Series([j["judgment"] for j in document["judgments"]]).value_counts().to_dict()
        logger.info("batch %d: %d judgments %s", batch, len(document["judgments"]), counts)


def import_judgments(key_path: str, paths: list[str], output: str, log_path: str | None = None) -> pd.DataFrame:
    """Read the judgment files ``paths`` against the key and write them unblinded to ``output`` (Parquet)."""
    setup_logging(log_path)
    key = read_parquet(key_path, ["export", "pair_id", "comparison", "a", "b", "prompt_id", "shared", "batch",
                                  "left"])
    if not paths:
        raise ValueError("no judgment files: human_evaluation.judgments names a folder with none (*.json saved "
                         "from the batch pages, or filled batch_*.csv)")
    judged = unblind(read_judgments(paths, key), key)
    with atomic_path(output) as path:
        judged.to_parquet(path, index=False)
    logger.info("%d judgments by %d annotators from %d files", len(judged), judged["annotator"].nunique(),
                len(paths))
    return judged
