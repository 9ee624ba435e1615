"""Preference pairs on the policies' own replies, collected as HH's were: sampled replies, labelled by annotators.

A reward model trained only on the dataset's replies learns those replies, not the
policies': it may rank a policy's own samples no better than chance. HH's
comparisons were of replies written by the models being aligned; this stage does
the same in miniature. Each drawn training prompt gets two sampled replies of one
initial policy, and the dataset's simulated annotators (:mod:`rrhf.data.annotators`,
with the ``label_noise`` and ``annotator_bias`` its provenance records) say which
they prefer. The prompts RRHF trains on are left out, so the reward model's
agreement with gold on the policies' training samples stays a held-out measure.
"""

from __future__ import annotations

import logging
import random
from typing import Any

import pandas as pd

from rrhf.config.blocks import OnPolicy, PromptSubset
from rrhf.data.annotators import AnnotatorBias, label_pairs
from rrhf.data.dataset_facts import DATASET_KEY, facts_of, gold_source
from rrhf.data.gold_reward import gold_reward_function
from rrhf.data.preference_pairs import select_subset, share_agreeing
from rrhf.io import read_parquet, read_provenance, setup_logging, write_parquet
from rrhf.models.loading import load_causal_lm, resolve_device
from rrhf.sampling.generation import generate_responses
from rrhf.text import cut_at_turn

log = logging.getLogger("rrhf")
KEY = "models.NAME.build.on_policy"  # the config key errors name (the rule passes the build's own)


def collection_prompts(train: pd.DataFrame, excluded: pd.DataFrame, count: int, seed: int,
                       key: str = KEY) -> pd.DataFrame:
    """``count`` prompts of ``train`` (prompt_id, prompt) that are not in ``excluded``, a seeded draw in
    prompt_id order; a ValueError naming ``{key}.prompts`` when there are fewer."""
    pool = train[~train["prompt_id"].isin(set(excluded["prompt_id"]))].sort_values("prompt_id")
    if count > len(pool):
        raise ValueError(f"{key}.prompts: {count} prompts asked for, but the train split has only "
                         f"{len(pool)} besides the ones RRHF trains on; ask for at most {len(pool)}")
    chosen = sorted(random.Random(seed).sample(range(len(pool)), count))
    return pool.iloc[chosen].reset_index(drop=True)


def annotated_prompts(train_data: str, excluded_prompts: PromptSubset | dict[str, Any], count: int, seed: int,
                      key: str, remedy: str):
    """(gold reward function, the dataset's spec, drawn prompts) for a stage whose simulated annotators label the
    policies' own replies to ``count`` prompts of ``train_data`` that RRHF does not train on
    (:func:`collection_prompts`). A dataset without a gold reward has no annotators: a ValueError naming ``key``,
    the file and the ``remedy``, before any model is loaded."""
    grade = gold_reward_function(gold_source(train_data))
    if grade is None:
        raise ValueError(f"{key}: {train_data} has no gold reward, so no simulated annotators to label the "
                         f"policies' replies; {remedy}")
    train = read_parquet(train_data, ["prompt_id", "prompt"])
    excluded = select_subset(train, excluded_prompts, origin=train_data)
    return (grade, read_provenance(train_data).get("spec", {}),
            collection_prompts(train, excluded, count, seed, key))


def pair_rows(prompts: pd.DataFrame, replies: list[list[str]], policy: str, grade) -> list[dict[str, Any]]:
    """One row per prompt whose two replies differ: prompt_id, prompt, policy, first, second and their gold."""
    rows = []
    for prompt_id, prompt, (first, second) in zip(prompts["prompt_id"], prompts["prompt"], replies):
        first, second = cut_at_turn(first), cut_at_turn(second)
        if first.strip() == second.strip():
            continue
        rows.append({"prompt_id": prompt_id, "prompt": prompt, "policy": policy, "first": first, "second": second,
                     "first_gold": grade(prompt, first), "second_gold": grade(prompt, second)})
    return rows


def collect_preferences(policies: dict[str, str], train_data: str, output: str,
                        on_policy: OnPolicy | dict[str, Any], excluded_prompts: PromptSubset | dict[str, Any],
                        device: str = "auto", dtype: str = "auto", key: str = KEY,
                        log_path: str | None = None) -> pd.DataFrame:
    """Stage entry point: sample two replies per drawn prompt from the ``policies`` (name -> model path; the
    prompts shared out among them in turn), label each pair with the dataset's annotators, and write
    ``output`` (prompt_id, prompt, chosen, rejected, policy, chosen_gold, rejected_gold, held_out: a seeded
    ``on_policy.held_out`` share of the prompts, whose pairs the reward model is evaluated on, not trained on).

    ``excluded_prompts`` is the subset of the train split RRHF trains on (never drawn). Pairs whose replies
    are the same text are dropped (and counted in the log). Errors name the config block ``key``; both checks
    (gold, enough prompts) run before any model is loaded.
    """
    setup_logging(log_path)
    on_policy = OnPolicy.coerce(on_policy)
    grade, spec, prompts = annotated_prompts(train_data, excluded_prompts, on_policy.prompts, on_policy.seed, key,
                                             "use a synthetic dataset, or on_policy: null")
    rows: list[dict[str, Any]] = []
    for turn, (name, path) in enumerate(policies.items()):
        share = prompts.iloc[turn::len(policies)].reset_index(drop=True)
        model, tokenizer = load_causal_lm(path, resolve_device(device), dtype)
        replies = generate_responses(model, tokenizer, list(share["prompt"]), "top_p", num_responses=2,
                                     max_new_tokens=on_policy.max_new_tokens, top_p=on_policy.top_p,
                                     temperature=on_policy.temperature, seed=on_policy.seed + 1000 * turn,
                                     batch_size=on_policy.batch_size, show_progress=True)
        del model
        policy_rows = pair_rows(share, replies, name, grade)
        log.info("%s: %d pairs from %d prompts (%d with two identical replies dropped)", name, len(policy_rows),
                 len(share), len(share) - len(policy_rows))
        rows += policy_rows
    bias = AnnotatorBias.coerce(spec.get("annotator_bias"))
    labelled = label_pairs([(r["prompt"], r["first"], r["second"], r["first_gold"], r["second_gold"]) for r in rows],
                           spec["label_noise"], bias, random.Random(on_policy.seed))
    golds = [(r["first_gold"], r["second_gold"]) if chosen == r["first"] else (r["second_gold"], r["first_gold"])
             for r, (_, chosen, _) in zip(rows, labelled)]  # (chosen's, rejected's)
    frame = pd.DataFrame({"prompt_id": [r["prompt_id"] for r in rows], "prompt": [r["prompt"] for r in rows],
                          "chosen": [c for _, c, _ in labelled], "rejected": [r for _, _, r in labelled],
                          "policy": [r["policy"] for r in rows],
                          "chosen_gold": [c for c, _ in golds], "rejected_gold": [r for _, r in golds]})
    held_out = set(random.Random(on_policy.seed + 1).sample(sorted(set(frame["prompt_id"])),
                                                             round(on_policy.held_out * frame["prompt_id"].nunique())))
    frame["held_out"] = frame["prompt_id"].isin(held_out)
    agreement = share_agreeing(list(frame["chosen_gold"] - frame["rejected_gold"]))  # golds graded above
    log.info("%d on-policy pairs; %.3f of the labels agree with gold (annotator bias %s, label noise %s)",
             len(frame), agreement, bias, spec.get("label_noise"))
    write_parquet(frame, output, {"stage": "collect_preferences", "policies": policies,
                                  "on_policy": on_policy.as_config(), "labels_agreeing_with_gold": agreement,
                                  DATASET_KEY: facts_of(train_data)})
    return frame
