"""Table 5: how often a scorer prefers the chosen reply of a test pair to the rejected one.

The reward model scores with its reward; a policy with its length-normalised
log-probability p_i (the score RRHF ranks with). A tie counts as wrong.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from rrhf.io import read_parquet, setup_logging, write_json
from rrhf.models import load_causal_lm, load_reward_model, resolve_device
from rrhf.rewards import provided_responses, score
from rrhf.train_reward import pairwise_accuracy
from rrhf.train_rrhf import policy_rank_accuracy

log = logging.getLogger("rrhf")
SCORERS = ("reward_model", "policy")


def labelled_pairs(test: pd.DataFrame) -> pd.DataFrame:
    """Each pair as two scored-set rows: the chosen reply with reward 1, the rejected one with reward 0."""
    rows = provided_responses(test)
    rows["reward"] = (rows["source"] == "chosen").astype(float)
    return rows


def reward_model_accuracy(model, tokenizer, test: pd.DataFrame, batch_size: int, max_length: int,
                          prompt_sharing: str = "auto") -> float:
    """Share of pairs with r(chosen) > r(rejected); both replies of a pair are scored in one call, so they
    share their prompt where the model allows it (:func:`rrhf.rewards.score`)."""
    prompts = list(test["prompt"])
    rewards = score(model, tokenizer, prompts + prompts, list(test["chosen"]) + list(test["rejected"]), batch_size,
                    max_length, show_progress=True, prompt_sharing=prompt_sharing)
    return pairwise_accuracy(rewards[: len(test)], rewards[len(test):])


def policy_accuracy(model, tokenizer, test: pd.DataFrame, batch_size: int, max_length: int,
                    length_penalty: float, prompt_sharing: str = "auto") -> float:
    """Share of pairs with p(chosen) > p(rejected), p the length-normalised log-probability of the reply."""
    return policy_rank_accuracy(model, tokenizer, labelled_pairs(test), max_length, length_penalty, batch_size,
                                prompt_sharing)


def pair_accuracy(test_data: str, scorer: str, model_path: str, output: str, batch_size: int, max_length: int,
                  length_penalty: float = 1.0, device: str = "auto", dtype: str = "auto",
                  prompt_sharing: str = "auto", log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: the accuracy of ``scorer`` ("reward_model" or "policy", loaded from ``model_path``)
    on every pair of the test split; writes ``output`` (JSON: accuracy, pairs, scorer, model)."""
    setup_logging(log_path)
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, not {scorer!r}")
    test = read_parquet(test_data, ["prompt_id", "prompt", "chosen", "rejected"])
    if scorer == "reward_model":
        model, tokenizer = load_reward_model(model_path, resolve_device(device), dtype)
        accuracy = reward_model_accuracy(model, tokenizer, test, batch_size, max_length, prompt_sharing)
    else:
        model, tokenizer = load_causal_lm(model_path, resolve_device(device), dtype)
        accuracy = policy_accuracy(model, tokenizer, test, batch_size, max_length, length_penalty, prompt_sharing)
    result = {"accuracy": accuracy, "pairs": len(test), "scorer": scorer, "model": model_path}
    log.info("%s %s prefers the chosen reply on %.4f of %d test pairs", scorer, model_path, accuracy, len(test))
    write_json(result, output)
    return result
