"""Blind pairs for a human evaluation (the paper's Appendix D): which test prompts each comparison is judged on,
which reply is shown first, and which annotator judges what.

For each comparison (side A against side B, both answering the same test prompts) ``pairs + shared_pairs``
prompts are drawn with the seed. The first ``shared_pairs`` go to every annotator (the agreement figures); the
others are dealt out among the annotators in turn and are the ones Table 3 counts. Each pair's sides are
shuffled (``left`` says which of A and B is shown first) and every pair gets an id that says nothing of its
comparison (``pair-0001``, numbered in a shuffled order over all comparisons). A batch is one annotator's pairs:
the shared pairs and its own, in an order of its own.

The key (``pairs.parquet``) holds what the pages hide: the comparison, the sides, their rewards and gold. The
``export`` id, a digest of the pages' content, travels in every page, spreadsheet and judgment file, so judgments
are never read against the pairs of another export.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rrhf.io import atomic_path, read_parquet, setup_logging

logger = logging.getLogger(__name__)

SIDES = ("a", "b")
SHEET_COLUMNS = ["export", "batch", "pair_id", "prompt", "left", "right", "judgment", "annotator"]
KEY_COLUMNS = ["export", "pair_id", "comparison", "a", "b", "prompt_id", "prompt", "shared", "batch", "left",
               "a_response", "b_response", "a_reward", "b_reward", "a_gold_reward", "b_gold_reward"]


def comparison_frame(a_generations: pd.DataFrame, b_generations: pd.DataFrame, where: str) -> pd.DataFrame:
    """One row per test prompt both sides answered: prompt_id, prompt, and each side's response, reward and
    gold_reward (a_*, b_*); raises naming ``where`` when the sides answered no prompt in common."""
    columns = ["prompt_id", "prompt", "response", "reward", "gold_reward"]
    sides = []
    for side, frame in zip(SIDES, (a_generations, b_generations)):
        frame = frame.reindex(columns=columns).drop_duplicates("prompt_id")
        sides.append(frame.rename(columns={c: f"{side}_{c}" for c in columns[2:]}))
    joined = sides[0].merge(sides[1].drop(columns="prompt"), on="prompt_id", how="inner")
    if joined.empty:
        raise ValueError(f"{where}: the two sides answered no test prompt in common")
    return joined.sort_values("prompt_id", kind="stable").reset_index(drop=True)


def draw_pairs(frame: pd.DataFrame, comparison: int, pairs: int, shared_pairs: int, annotators: int,
               seed: int, where: str, dealt: int = 0) -> pd.DataFrame:
    """The comparison's pairs: ``pairs + shared_pairs`` prompts of ``frame`` (:func:`comparison_frame`) drawn with
    ``seed``, each with ``shared``, its ``batch`` (1..annotators; 0 for a shared pair, which every batch has) and
    ``left`` ("a" or "b": the side shown first). Counted pairs are dealt in turn, going on from the ``dealt``
    pairs of the comparisons before, so that no batch gets the remainder of every comparison."""
    needed = pairs + shared_pairs
    if len(frame) < needed:
        raise ValueError(f"{where}: human_evaluation.pairs + shared_pairs asks for {needed} pairs, but the two sides "
                         f"answered {len(frame)} test prompts in common")
    generator = np.random.default_rng([seed, comparison])
    drawn = frame.iloc[generator.permutation(len(frame))[:needed]].reset_index(drop=True)
    drawn["comparison"] = comparison
    drawn["shared"] = np.arange(needed) < shared_pairs
    drawn["batch"] = np.where(drawn["shared"], 0, (dealt + np.arange(needed) - shared_pairs) % annotators + 1)
    drawn["left"] = np.where(generator.random(needed) < 0.5, "a", "b")
    return drawn


def export_id(pairs: pd.DataFrame) -> str:
    """A digest of what the annotators see (each pair's id, batch, prompt and replies in shown order): twelve
    hex digits that change with any of it."""
    shown = [[row.pair_id, int(row.batch), row.prompt, *shown_replies(row)] for row in pairs.itertuples()]
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode("utf-8")).hexdigest()[:12]


def shown_replies(row: Any) -> tuple[str, str]:
    """(left, right): a pair's replies as the page shows them."""
    return (row.a_response, row.b_response) if row.left == "a" else (row.b_response, row.a_response)


def build_pairs(comparisons: list[dict[str, Any]], pairs: int, shared_pairs: int, annotators: int,
                seed: int) -> pd.DataFrame:
    """The key of an export (:data:`KEY_COLUMNS`) for ``comparisons`` ({number, a, b, a_generations,
    b_generations}: the two sides' labels and their generations as frames)."""
    if pairs * len(comparisons) < annotators:
        raise ValueError(f"human_evaluation: {pairs} pairs for each of {len(comparisons)} comparisons leave some of "
                         f"the {annotators} annotators no pair to judge")
    drawn = []
    for index, entry in enumerate(comparisons):
        where = f"table3 row {entry['number']} ({entry['a']} against {entry['b']})"
        frame = comparison_frame(entry["a_generations"], entry["b_generations"], where)
        one = draw_pairs(frame, entry["number"], pairs, shared_pairs, annotators, seed, where, index * pairs)
        drawn.append(one.assign(a=entry["a"], b=entry["b"]))
    key = pd.concat(drawn, ignore_index=True)
    order = np.random.default_rng([seed, 0]).permutation(len(key))
    key = key.iloc[order].reset_index(drop=True)
    key["pair_id"] = [f"pair-{number:04d}" for number in range(1, len(key) + 1)]
    key["export"] = export_id(key)
    return key[KEY_COLUMNS]


def batch_tasks(key: pd.DataFrame, batch: int, seed: int) -> list[dict[str, str]]:
    """Batch ``batch``'s tasks in its own order: the shared pairs and its own, each {pair_id, prompt, left,
    right}, without the blank lines and spaces the texts begin or end with."""
    mine = key[key["shared"] | (key["batch"] == batch)]
    mine = mine.iloc[np.random.default_rng([seed, 1, batch]).permutation(len(mine))]
    return [{"pair_id": row.pair_id, "prompt": row.prompt.strip(), "left": shown_replies(row)[0].strip(),
             "right": shown_replies(row)[1].strip()} for row in mine.itertuples()]


def batch_sheet(tasks: list[dict[str, str]], export: str, batch: int) -> pd.DataFrame:
    """Batch ``batch``'s ``tasks`` (:func:`batch_tasks`) as a spreadsheet (:data:`SHEET_COLUMNS`), with an empty
    ``judgment`` (to be filled with left, tie or right) and ``annotator`` column."""
    frame = pd.DataFrame(tasks, columns=["pair_id", "prompt", "left", "right"])
    return frame.assign(export=export, batch=batch, judgment="", annotator="")[SHEET_COLUMNS]


def export_human_evaluation(comparisons: list[dict[str, Any]], study: dict[str, Any], key_output: str,
                            page_outputs: list[str], sheet_outputs: list[str], log_path: str | None = None) -> None:
    """Write an export: the key (``key_output``), and for each annotator k (``study``: the ``human_evaluation``
    block) the page ``page_outputs[k-1]`` and the spreadsheet ``sheet_outputs[k-1]``. ``comparisons`` give each
    side's generations as a path."""
    from rrhf.studies.human_evaluation.comparison_page import comparison_page

    setup_logging(log_path)
    # Each generations file read once: a side (RRHF-DP in the paper's three) is often in several comparisons.
    frames = {path: read_parquet(path, ["prompt_id", "prompt", "response", "reward"])
              for entry in comparisons for path in (entry["a_generations"], entry["b_generations"])}
    loaded = [{**entry, "a_generations": frames[entry["a_generations"]],
               "b_generations": frames[entry["b_generations"]]} for entry in comparisons]
    key = build_pairs(loaded, study["pairs"], study["shared_pairs"], study["annotators"], study["seed"])
    export = key["export"].iloc[0]
    for batch, (page, sheet) in enumerate(zip(page_outputs, sheet_outputs), start=1):
        tasks = batch_tasks(key, batch, study["seed"])
        title = f"Which reply is better? Batch {batch} of {study['annotators']} ({len(tasks)} pairs)"
        with atomic_path(page) as path:
            Path(path).write_text(comparison_page(export, batch, tasks, title), encoding="utf-8")
        with atomic_path(sheet) as path:
            batch_sheet(tasks, export, batch).to_csv(path, index=False)
    with atomic_path(key_output) as path:
        key.to_parquet(path, index=False)
    logger.info("export %s: %d comparisons, %d pairs (%d shared), %d batches", export, len(comparisons), len(key),
                int(key["shared"].sum()), len(page_outputs))
