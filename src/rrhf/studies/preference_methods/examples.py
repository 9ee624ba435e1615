"""What the pairwise and unpaired preference methods train on, made from an RRHF training set.

RRHF ranks all K scored replies of a prompt. DPO, IPO, SLiC-HF, SimPO and ORPO learn from pairs, and KTO from
single replies labelled desirable or undesirable. The same scored set (prompt_id, prompt, response_index,
response, reward) yields both, so every method trains on identical samples and rewards:

- ``best_worst``: per prompt, the highest-reward reply against the lowest (one pair per prompt; the first of
  equal rewards by response_index, as RRHF's fine-tuning target is chosen);
- ``all_ordered``: every two replies of a prompt with different rewards, the higher one chosen (up to
  K (K - 1) / 2 pairs per prompt);
- ``provided``: the dataset's own pair, the provided chosen reply against the provided rejected one (replies
  whose ``source`` is ``chosen`` and ``rejected``; a set without them has none).

Pairs whose two rewards are equal are dropped: they say nothing of which reply is better. For KTO, a reply is
desirable when its reward is above its prompt's mean reward (``prompt_mean``) or above a fixed number; replies
exactly at the threshold are dropped.
"""

from __future__ import annotations

import itertools

import pandas as pd

PAIR_RULES = ("best_worst", "all_ordered", "provided")
PAIR_COLUMNS = ["prompt_id", "prompt", "chosen", "rejected", "chosen_reward", "rejected_reward",
                "chosen_index", "rejected_index"]
LABELLED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "reward", "desirable"]


def _pair(group: pd.DataFrame, chosen: pd.Series, rejected: pd.Series) -> dict:
    return {"prompt_id": chosen["prompt_id"], "prompt": group["prompt"].iloc[0], "chosen": chosen["response"],
            "rejected": rejected["response"], "chosen_reward": float(chosen["reward"]),
            "rejected_reward": float(rejected["reward"]), "chosen_index": int(chosen["response_index"]),
            "rejected_index": int(rejected["response_index"])}


def preference_pairs(scored: pd.DataFrame, rule: str) -> pd.DataFrame:
    """The pairs (:data:`PAIR_COLUMNS`) of a scored set by ``rule`` (:data:`PAIR_RULES`), sorted by prompt_id then
    the chosen and rejected response_index; ties dropped."""
    if rule not in PAIR_RULES:
        raise ValueError(f"pairs: {rule!r} is not one of {', '.join(PAIR_RULES)}")
    pairs = []
    ordered = scored.sort_values(["prompt_id", "response_index"], kind="stable")
    for _, group in ordered.groupby("prompt_id", sort=False):
        replies = [row for _, row in group.iterrows()]
        if rule == "best_worst":
            best = max(replies, key=lambda row: row["reward"])  # max and min keep the first of equal rewards
            worst = min(replies, key=lambda row: row["reward"])
            candidates = [(best, worst)]
        elif rule == "all_ordered":
            candidates = [(a, b) if a["reward"] > b["reward"] else (b, a)
                          for a, b in itertools.combinations(replies, 2)]
        else:
            if "source" not in group.columns:
                raise ValueError("pairs: provided needs the scored set's `source` column (chosen / rejected)")
            by_source = {row["source"]: row for row in replies}
            candidates = [(by_source["chosen"], by_source["rejected"])] if {"chosen", "rejected"} <= set(by_source) \
                else []
        pairs += [_pair(group, chosen, rejected) for chosen, rejected in candidates
                  if chosen["reward"] != rejected["reward"]]
    frame = pd.DataFrame(pairs, columns=PAIR_COLUMNS)
    return frame.sort_values(["prompt_id", "chosen_index", "rejected_index"], kind="stable").reset_index(drop=True)


def desirable_labels(scored: pd.DataFrame, threshold: str | float) -> pd.DataFrame:
    """KTO's examples (:data:`LABELLED_COLUMNS`): every reply with ``desirable`` True when its reward is above
    ``threshold`` (``"prompt_mean"``: its prompt's mean reward; a number: that reward), False when below;
    replies exactly at the threshold are dropped."""
    frame = scored.sort_values(["prompt_id", "response_index"], kind="stable").reset_index(drop=True)
    if threshold == "prompt_mean":
        cut = frame.groupby("prompt_id")["reward"].transform("mean")
    elif isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        cut = pd.Series(float(threshold), index=frame.index)
    else:
        raise ValueError(f"kto threshold: {threshold!r} is neither prompt_mean nor a number")
    kept = frame[frame["reward"] != cut].copy()
    kept["desirable"] = kept["reward"] > cut[kept.index]
    return kept[LABELLED_COLUMNS].reset_index(drop=True)


def method_examples(scored: pd.DataFrame, data: str, rule: str, threshold: str | float) -> pd.DataFrame:
    """A method's training examples in the layout of a scored set (prompt_id, prompt, response_index, response,
    reward), which RRHF's batching packs and the reference stage scores as they are. ``data`` "pairs": one
    example per pair of :func:`preference_pairs` (``rule``), its chosen reply response 0 and its rejected reply
    response 1, with their rewards; ``prompt_id`` "{prompt_id}/{chosen_index}-{rejected_index}". ``data``
    "labels" (KTO): one example per reply of :func:`desirable_labels` (``threshold``), the reply response 0 with
    reward 1 (desirable) or 0, and response 1 a reply to another prompt (reward 0), on which KTO estimates
    KL(pi || rho); ``prompt_id`` "{prompt_id}/{response_index}"."""
    rows = []
    if data == "pairs":
        for pair in preference_pairs(scored, rule).itertuples():
            example = f"{pair.prompt_id}/{pair.chosen_index}-{pair.rejected_index}"
            rows += [(example, pair.prompt, 0, pair.chosen, pair.chosen_reward),
                     (example, pair.prompt, 1, pair.rejected, pair.rejected_reward)]
    elif data == "labels":
        labels = desirable_labels(scored, threshold)
        blocks = [group for _, group in labels.groupby("prompt_id", sort=True)]
        for number, block in enumerate(blocks):
            # The k-th reply of the next prompt (cyclically): a reply to another prompt whenever there are two.
            following = blocks[(number + 1) % len(blocks)]["response"].tolist()
            for k, reply in enumerate(block.itertuples()):
                example = f"{reply.prompt_id}/{reply.response_index}"
                rows += [(example, reply.prompt, 0, reply.response, float(reply.desirable)),
                         (example, reply.prompt, 1, following[k % len(following)], 0.0)]
    else:
        raise ValueError(f"method data: {data!r} is neither pairs nor labels")
    return pd.DataFrame(rows, columns=["prompt_id", "prompt", "response_index", "response", "reward"])


def write_method_examples(scored_path: str, data: str, rule: str, threshold: str | float, output: str,
                          log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: :func:`method_examples` of the scored set at ``scored_path``, written to ``output``."""
    from rrhf.io import setup_logging, write_parquet
    from rrhf.scoring.training_sets import read_scored_set

    logger = setup_logging(log_path)
    scored = read_scored_set(scored_path, ["prompt_id", "prompt", "response_index", "response", "reward"])
    frame = method_examples(scored, data, rule, threshold)
    if frame.empty:
        raise ValueError(f"{scored_path}: no {data} for the methods (every reply of every prompt ties?)")
    write_parquet(frame, output, {"stage": "method_examples", "scored": scored_path, "data": data, "pairs": rule,
                                  "kto_threshold": threshold})
    logger.info("%s: %d examples of %s from %d prompts", output, frame["prompt_id"].nunique(), data,
                scored["prompt_id"].nunique())
    return frame
