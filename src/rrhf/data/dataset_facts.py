"""Facts about a file's data read from the file itself: which kind of dataset its prompts come from.

prepare_dataset records the dataset's ``source`` in its Parquet provenance (rrhf.io.write_parquet) under
``dataset``, and every stage that writes a file derived from one (samples, rewards, training sets) copies it.
So a stage that needs to know, say, whether its replies have a gold reward (:func:`gold_source`) reads it from
its input instead of being told by the config through every rule.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from rrhf.io import read_provenance

DATASET_KEY = "dataset"
log = logging.getLogger("rrhf")


def dataset_facts(source: str) -> dict[str, Any]:
    """The facts prepare_dataset records about a dataset of config ``source`` (synthetic, hub, anthropic_jsonl)."""
    return {"source": source}


def facts_of(*paths: str | os.PathLike | None) -> dict[str, Any]:
    """The dataset facts the files at ``paths`` (None entries skipped) record; {} when none does. Files that
    record different datasets raise ValueError naming them."""
    found = {str(path): read_provenance(path).get(DATASET_KEY) for path in paths if path}
    recorded = {path: facts for path, facts in found.items() if facts is not None}
    if len({repr(facts) for facts in recorded.values()}) > 1:
        raise ValueError(f"inputs from different datasets: {recorded}")
    return next(iter(recorded.values()), {})


def gold_source(*paths: str | os.PathLike | None) -> str | None:
    """The dataset source of the files at ``paths``, whose gold reward (rrhf.data.gold_reward.gold_rewards)
    grades their replies; None, with a warning, when they do not record one."""
    facts = facts_of(*paths)
    if not facts:
        log.warning("%s: no dataset recorded in the provenance (a file from an older version, or written by "
                    "hand): no gold reward", ", ".join(str(p) for p in paths if p))
    return facts.get("source")
