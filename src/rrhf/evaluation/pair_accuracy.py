"""Table 5: how often a scorer prefers the chosen reply of a test pair to the rejected one.

The reward model scores with its reward; a policy with its length-normalised
log-probability p_i (the score RRHF ranks with). A tie counts as wrong.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch

from rrhf.batching.query_batches import build_examples, query_collator, response_logprobs
from rrhf.config.blocks import Scoring
from rrhf.io import read_parquet, setup_logging, write_json
from rrhf.losses import pairwise_accuracy, rank_pair_counts, sequence_scores
from rrhf.models.loading import load_causal_lm, load_reward_model, resolve_device
from rrhf.scoring.rewards import provided_responses, score

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
    share their prompt where the model allows it (:func:`rrhf.scoring.rewards.score`)."""
    prompts = list(test["prompt"])
    rewards = score(model, tokenizer, prompts + prompts, list(test["chosen"]) + list(test["rejected"]), batch_size,
                    max_length, show_progress=True, prompt_sharing=prompt_sharing)
    return pairwise_accuracy(rewards[: len(test)], rewards[len(test):])


def policy_accuracy(model, tokenizer, test: pd.DataFrame, batch_size: int, max_length: int,
                    length_penalty: float, prompt_sharing: str = "auto") -> float:
    """Share of pairs with p(chosen) > p(rejected), p the length-normalised log-probability of the reply."""
    return policy_rank_accuracy(model, tokenizer, labelled_pairs(test), max_length, length_penalty, batch_size,
                                prompt_sharing)


def pair_accuracy(test_data: str, scorer: str, model_path: str | dict[str, Any], output: str,
                  scoring: Scoring | dict[str, Any], length_penalty: float, device: str = "auto", dtype: str = "auto",
                  log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: the accuracy of ``scorer`` ("reward_model" or "policy", loaded from ``model_path``)
    on every pair of the test split, batched and cut as the ``scoring`` block says (a policy's log-probabilities
    normalised by ``length_penalty``, rrhf.length_penalty); writes ``output`` (JSON: accuracy, pairs, scorer,
    model)."""
    setup_logging(log_path)
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, not {scorer!r}")
    scoring = Scoring.coerce(scoring)
    batch_size, max_length, prompt_sharing = scoring.batch_size, scoring.max_length, scoring.prompt_sharing
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


@torch.no_grad()
def policy_rank_accuracy(model, tokenizer, frame: pd.DataFrame, max_length: int, length_penalty: float = 1.0,
                         batch_size: int = 8, prompt_sharing: str = "auto",
                         key: str = "scoring.prompt_sharing") -> float:
    """How often ``model``'s length-normalised log-probabilities order a scored set's responses like the rewards
    (``prompt_sharing`` as in :func:`query_collator`)."""
    examples = build_examples(frame, tokenizer, max_length)
    device = next(model.parameters()).device
    collate = query_collator(model, tokenizer, 1 << 20, prompt_sharing, key, "policy log-probabilities")
    right = total = 0
    for start in range(0, len(examples), batch_size):
        batch = {name: value.to(device) for name, value in collate(examples[start:start + batch_size]).items()}
        token_logprobs, mask = response_logprobs(model, batch)
        counts = rank_pair_counts(sequence_scores(token_logprobs, mask, length_penalty), batch["rewards"],
                                  mask.any(-1))
        right, total = right + counts[0], total + counts[1]
    return right / total if total else float("nan")
