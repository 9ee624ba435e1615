"""Preference data: three sources, one normalised format.

Every source becomes a DataFrame with the columns ``prompt_id, prompt, chosen,
rejected``: ``prompt`` is the conversation up to and including the last
``"\\n\\nAssistant:"``; ``chosen`` and ``rejected`` are the two replies that
follow it; ``prompt_id`` is a stable hash of the prompt text, unique within a
split, so later stages can join on it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from rrhf.config.blocks import Data, PromptSubset
from rrhf.data.dataset_facts import DATASET_KEY, dataset_facts
from rrhf.data.gold_reward import gold_reward_function
from rrhf.io import setup_logging, write_parquet

ASSISTANT_MARKER = "\n\nAssistant:"
COLUMNS = ["prompt_id", "prompt", "chosen", "rejected"]
log = logging.getLogger("rrhf")


def make_prompt_id(prompt: str) -> str:
    """Stable 16-hex-digit id of a prompt text (first 64 bits of its SHA-256)."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


def split_transcript(transcript: str) -> tuple[str, str]:
    """Split an HH transcript into (prompt up to and including the last Assistant marker, response)."""
    cut = transcript.rfind(ASSISTANT_MARKER)
    if cut < 0:
        return "", transcript
    end = cut + len(ASSISTANT_MARKER)
    return transcript[:end], transcript[end:]


@dataclass
class DropCounts:
    """How many input pairs were dropped, and why."""

    mismatched_prompt: int = 0
    empty_response: int = 0
    duplicate_prompt: int = 0
    details: list[str] = field(default_factory=list)

    def total(self) -> int:
        return self.mismatched_prompt + self.empty_response + self.duplicate_prompt


def normalise_pairs(records: Iterable[tuple[str, str, str]], origin: str) -> tuple[pd.DataFrame, DropCounts]:
    """Turn (prompt, chosen, rejected) triples into the normalised frame.

    Pairs with an empty (blank) response and repeats of an earlier prompt are
    dropped and counted; ``origin`` names the input in the counts' details.
    """
    counts = DropCounts()
    seen: set[str] = set()
    rows = []
    for index, (prompt, chosen, rejected) in enumerate(records):
        if not chosen.strip() or not rejected.strip():
            counts.empty_response += 1
            counts.details.append(f"{origin} pair {index}: empty response")
            continue
        prompt_id = make_prompt_id(prompt)
        if prompt_id in seen:
            counts.duplicate_prompt += 1
            counts.details.append(f"{origin} pair {index}: repeats an earlier prompt")
            continue
        seen.add(prompt_id)
        rows.append((prompt_id, prompt, chosen, rejected))
    return pd.DataFrame(rows, columns=COLUMNS), counts


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of each line of a UTF-8 text file, gunzipped when it ends in ``.gz``; raises
    ValueError naming the file and line for invalid UTF-8 and for a damaged or truncated gzip stream."""
    path = Path(path)
    line_number = 0
    handle = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")
    try:
        with handle:
            for line_number, raw in enumerate(handle, start=1):
                try:
                    yield line_number, raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ValueError(f"{path}:{line_number}: not valid UTF-8 (byte {raw[error.start]:#04x} at "
                                     f"column {error.start + 1}); save the file as UTF-8") from None
    except (OSError, EOFError, zlib.error) as error:
        if path.suffix != ".gz":
            raise
        where = "before its first line" if line_number == 0 else f"after line {line_number}"
        raise ValueError(f"{path}:{line_number + 1}: not a readable gzip file, damaged or cut short {where} "
                         f"({type(error).__name__}: {error})") from None


def transcript_pairs(pairs: Iterable[tuple[str, str]], origin: str) -> tuple[pd.DataFrame, DropCounts]:
    """The normalised frame of (chosen, rejected) HH transcripts: each split at its last ``Assistant:`` into the
    prompt and the reply (:func:`split_transcript`); a pair whose two transcripts do not share the prompt is
    dropped and counted, the rest go through :func:`normalise_pairs`."""
    triples, mismatched = [], 0
    for chosen_text, rejected_text in pairs:
        (prompt, chosen), (other, rejected) = split_transcript(chosen_text), split_transcript(rejected_text)
        if not prompt or prompt != other:
            mismatched += 1
            continue
        triples.append((prompt, chosen, rejected))
    frame, counts = normalise_pairs(triples, origin=origin)
    counts.mismatched_prompt = mismatched
    return frame, counts


def read_anthropic_records(path: str | Path) -> Iterator[tuple[str, str]]:
    """The (chosen, rejected) transcripts of an Anthropic HH file, line by line. Raises ``ValueError`` naming the
    file and line for a malformed line, a row that is not an object, a missing field, invalid UTF-8 or a damaged
    ``.gz`` (:func:`read_lines`)."""
    path = Path(path)
    for line_number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{line_number}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{line_number}: expected a JSON object, got {type(row).__name__}")
        for key in ("chosen", "rejected"):
            if not isinstance(row.get(key), str):
                raise ValueError(f"{path}:{line_number}: missing or non-string field {key!r}")
        yield row["chosen"], row["rejected"]


def load_anthropic_jsonl_with_counts(path: str | Path) -> tuple[pd.DataFrame, DropCounts]:
    """Like :func:`load_anthropic_jsonl`, also returning what was dropped."""
    return transcript_pairs(read_anthropic_records(path), str(path))


def load_anthropic_jsonl(path: str | Path) -> pd.DataFrame:
    """Load an Anthropic ``chosen``/``rejected`` transcript file (jsonl or jsonl.gz).

    Returns the normalised columns ``prompt_id, prompt, chosen, rejected``.
    """
    return load_anthropic_jsonl_with_counts(path)[0]


def load_hub_dataset(name: str, split: str, revision: str | None = None,
                     data_dir: str | None = None) -> tuple[pd.DataFrame, DropCounts]:
    """Load a preference dataset through ``datasets``: with ``prompt``/``chosen``/``rejected`` columns
    (Dahoas/rm-static), or with only ``chosen`` and ``rejected`` transcripts whose shared prefix up to the last
    ``Assistant:`` is the prompt (Anthropic/hh-rlhf; pairs whose two transcripts differ before it are dropped).

    ``name`` is a hub id or a local folder in the same layout; ``data_dir`` a subset's folder in it
    (``harmless-base`` of Anthropic/hh-rlhf).
    """
    import datasets

    dataset = datasets.load_dataset(name, split=split, revision=revision, data_dir=data_dir)
    origin = f"{name}{'/' + data_dir if data_dir else ''}[{split}]"
    if "prompt" not in dataset.column_names and {"chosen", "rejected"} <= set(dataset.column_names):
        return transcript_pairs(zip(dataset["chosen"], dataset["rejected"]), origin)
    missing = [c for c in ("prompt", "chosen", "rejected") if c not in dataset.column_names]
    if missing:
        raise ValueError(f"dataset {origin}: missing column(s) {missing} (found {dataset.column_names}); a "
                         "preference dataset has prompt, chosen and rejected, or chosen and rejected transcripts")
    frame = dataset.select_columns(["prompt", "chosen", "rejected"]).to_pandas()
    return normalise_pairs(frame.itertuples(index=False, name=None), origin=origin)


def held_out_split(frame: pd.DataFrame, split: str, test_fraction: float, seed: int) -> pd.DataFrame:
    """One split of pairs from a single source: a seeded shuffle of its rows puts the first
    round(test_fraction * rows) in ``test`` and the rest in ``train`` (each prompt in one of them: prompts are
    unique after :func:`normalise_pairs`), in the source's order."""
    if split not in ("train", "test"):
        raise ValueError(f"split {split!r}: a single file or hub split is divided into train and test only")
    order = np.random.default_rng(seed).permutation(len(frame))
    test = np.zeros(len(frame), dtype=bool)
    test[order[: round(test_fraction * len(frame))]] = True
    return frame[test if split == "test" else ~test].reset_index(drop=True)


def load_source(spec: dict[str, Any], split: str) -> tuple[pd.DataFrame, DropCounts]:
    """Load one split of a dataset described by a config ``datasets:`` entry."""
    source = spec["source"]
    if source == "hub" and spec.get("split"):
        frame, counts = load_hub_dataset(spec["name"], spec["split"], spec.get("revision"), spec.get("data_dir"))
        return held_out_split(frame, split, spec["test_fraction"], spec["seed"]), counts
    if source == "hub":
        return load_hub_dataset(spec["name"], spec["splits"][split], spec.get("revision"), spec.get("data_dir"))
    if source == "anthropic_jsonl" and spec.get("file"):
        frame, counts = load_anthropic_jsonl_with_counts(spec["file"])
        return held_out_split(frame, split, spec["test_fraction"], spec["seed"]), counts
    if source == "anthropic_jsonl":
        return load_anthropic_jsonl_with_counts(spec["files"][split])
    if source == "synthetic":
        from rrhf.data.synthetic_hh import generate_split

        return normalise_pairs(generate_split(spec, split), origin=f"synthetic[{split}]")
    raise ValueError(f"unknown dataset source {source!r}")


def select_prompts(frame: pd.DataFrame, limit: int | None, seed: int, shard: tuple[int, int] | None = None,
                   origin: str | None = None, key: str = "data.train_prompts / data.test_prompts") -> pd.DataFrame:
    """A deterministic random subset of ``limit`` rows (all rows, shuffled, if ``limit`` is None).

    With ``shard=(i, n)``, only every n-th selected row starting at the i-th: the
    n shards of a selection are disjoint and together make the whole of it. A
    ``limit`` above the rows there are raises ValueError naming ``key`` (the config
    key), ``origin`` (the file) and how many rows it has.
    """
    if limit is not None and limit > len(frame):
        raise ValueError(f"{key}: {limit} prompts asked for, but {origin or 'the dataset'} has only {len(frame)}; "
                         f"ask for at most {len(frame)} (null takes them all)")
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    selected = shuffled if limit is None else shuffled.head(limit)
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard {index} of {count} does not exist")
        selected = selected.iloc[index::count]
    return selected.reset_index(drop=True)


def select_subset(frame: pd.DataFrame, prompts: PromptSubset | dict[str, Any], origin: str,
                  shard: tuple[int, int] | None = None) -> pd.DataFrame:
    """:func:`select_prompts` of the prompts a stage uses (rrhf.config.blocks.PromptSubset: how many, the seed, the
    config key that says how many)."""
    prompts = PromptSubset.coerce(prompts)
    return select_prompts(frame, prompts.limit, prompts.seed, shard, origin=origin, key=prompts.key)


def share_agreeing(margins: list[float]) -> float | None:
    """Share of gold margins (chosen's gold minus rejected's) above zero, ties counting half; None when empty."""
    return float(sum((m > 0) + 0.5 * (m == 0) for m in margins) / len(margins)) if margins else None


def gold_agreement(frame: pd.DataFrame, source: str | None) -> float | None:
    """Share of pairs whose chosen reply has the higher gold reward (ties count half); None without gold."""
    grade = gold_reward_function(source)
    if grade is None:
        return None
    grades = [(grade(prompt, chosen), grade(prompt, rejected))
              for prompt, chosen, rejected in zip(frame["prompt"], frame["chosen"], frame["rejected"])]
    return share_agreeing([a - b for a, b in grades if a is not None and b is not None])


def prepare_dataset(spec: dict[str, Any], split: str, output: str, data: Data | dict[str, Any] | None = None,
                    name: str | None = None, log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: write one normalised split to ``output`` (Parquet).

    With the config's ``data`` block and this dataset's ``name``: when the experiment uses this dataset and asks
    for more of this split's prompts (``data.train_prompts`` / ``data.test_prompts``) than it has, stop here,
    naming the key, before any model samples or trains on it (the counts come from the config, not the rule's
    params, so changing them re-runs nothing here).
    """
    setup_logging(log_path)
    frame, counts = load_source(spec, split)
    log.info(
        "%s split %s: kept %d pairs; dropped %d with mismatched prompts, %d with an empty response, "
        "%d repeated prompts",
        spec.get("source"), split, len(frame), counts.mismatched_prompt, counts.empty_response, counts.duplicate_prompt,
    )
    for detail in counts.details[:50]:
        log.info("dropped: %s", detail)
    if frame.empty:
        raise ValueError(f"dataset split {split!r} of {spec} has no usable pairs")
    agreement = gold_agreement(frame, spec.get("source"))
    if agreement is not None:
        log.info("%s split %s: %.3f of the labels agree with the gold reward", spec.get("source"), split, agreement)
    data = Data.coerce(data) if data is not None else None
    asked = getattr(data, f"{split}_prompts", None) if data is not None and data.dataset == name else None
    if asked is not None and asked > len(frame):
        raise ValueError(f"data.{split}_prompts: {asked} prompts asked for, but the {split} split of dataset "
                         f"{name!r} has only {len(frame)}; ask for at most {len(frame)} (null takes them all)")
    write_parquet(frame, output, {"stage": "prepare_dataset", "split": split, "spec": spec,
                                  "dropped": counts.total(), "labels_agreeing_with_gold": agreement,
                                  DATASET_KEY: dataset_facts(spec["source"])})
    return frame
