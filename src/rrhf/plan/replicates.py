"""Replicates of the experiment: which seeds a replicate changes and which folder its files live in.

Replicate 0 is the run as configured: its seeds are the config's and its files are where they always were
(``results/models/...``). Replicate r >= 1 derives each seed of a re-seeded stage from the config's seed and r
(:func:`replicate_seed`) and keeps its files under ``results/replicate{r}/`` (built models under
``resources/models/replicate{r}/``). A file whose stage and every stage before it keep their seeds is the
same in every replicate, so replicates share it (the paper config's untrained policies, for instance).

Stages, in the order files depend on them: ``models`` (the model builds: pre-training, SFT, the reward model),
``sampling`` (every sampling seed: training samples, best-of-n) and ``training`` (RRHF, online RRHF, PPO).
The data and the tokenizer never change with the replicate: replicates are paired on the same test prompts.
"""

from __future__ import annotations

import hashlib
import re

STAGES = ("models", "sampling", "training")
# A replicate's folder as a path wildcard matches it: "" for replicate 0, "replicate{r}/" otherwise.
FOLDER_PATTERN = r"(?:replicate[1-9][0-9]*/)?"
_FOLDER = re.compile(r"replicate([1-9][0-9]*)/")


def replicate_seed(seed: int, replicate: int) -> int:
    """The seed ``seed`` becomes in replicate ``replicate``: itself for replicate 0, otherwise a number in
    [0, 2**31) derived from both by SHA-256 (the same on every machine and Python)."""
    if replicate == 0:
        return seed
    digest = hashlib.sha256(f"rrhf-replicate:{seed}:{replicate}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31


def folder_of(replicate: int) -> str:
    """The path folder of a replicate: "" for 0, "replicate{r}/" otherwise."""
    return "" if replicate == 0 else f"replicate{replicate}/"


def replicate_number(replicate: int | str) -> int:
    """A replicate's number, from itself or its folder ("" or "replicate{r}/")."""
    if isinstance(replicate, int):
        if replicate < 0:
            raise ValueError(f"replicate {replicate}: replicates are numbered from 0")
        return replicate
    if replicate == "":
        return 0
    match = _FOLDER.fullmatch(replicate)
    if not match:
        raise ValueError(f"replicate folder {replicate!r}: expected '' or 'replicate<r>/' with r >= 1")
    return int(match.group(1))


class Replicates:
    """The replicates of a run: how many, and which stages (:data:`STAGES`) each re-seeds."""

    def __init__(self, count: int, reseeded: list[str] | tuple[str, ...]):
        unknown = sorted(set(reseeded) - set(STAGES))
        if unknown:
            raise ValueError(f"reseeded_stages: {unknown} are not stages; the stages are {list(STAGES)}")
        self.count = count
        self.reseeded = tuple(stage for stage in STAGES if stage in reseeded)

    def numbers(self) -> range:
        return range(self.count)

    def changes(self, stage: str) -> bool:
        """Whether files of ``stage`` differ between replicates: it or a stage before it is re-seeded."""
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not one of {list(STAGES)}")
        return any(s in self.reseeded for s in STAGES[:STAGES.index(stage) + 1])

    def folder(self, replicate: int | str, stage: str) -> str:
        """The folder holding replicate ``replicate``'s files of ``stage``: its own when they differ between
        replicates, else replicate 0's ("")."""
        number = replicate_number(replicate)
        return folder_of(number) if number and self.changes(stage) else ""

    def seed(self, seed: int, replicate: int | str, stage: str) -> int:
        """A seed of ``stage`` in replicate ``replicate``: derived when the stage is re-seeded, else unchanged."""
        return replicate_seed(seed, replicate_number(replicate)) if stage in self.reseeded else seed
