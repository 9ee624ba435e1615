"""Evaluation: generate one response per test prompt, cut it at the next turn, score reward and perplexity."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from rrhf.config.blocks import BestOfN, Decoding, PromptSubset, Scoring
from rrhf.data.dataset_facts import DATASET_KEY, facts_of, gold_source
from rrhf.data.gold_reward import gold_rewards
from rrhf.data.preference_pairs import select_subset
from rrhf.evaluation.divergence import KL_BATCH_SIZE, response_kl
from rrhf.evaluation.perplexity import PERPLEXITY_BATCH_SIZE, perplexity, response_nll
from rrhf.io import read_parquet, setup_logging, write_json, write_parquet
from rrhf.models.loading import load_causal_lm, resolve_device
from rrhf.models.model_card import add_evaluation
from rrhf.models.prompt_formats import prompt_format as prompt_format_of
from rrhf.models.prompt_formats import set_prompt_format
from rrhf.sampling.generation import generate_responses
from rrhf.scoring.rewards import score_frame
from rrhf.statistics import mean_and_sem
from rrhf.text import cut_at_turn, distinct_n, repetition, words

log = logging.getLogger("rrhf")



def summarise_generations(frame: pd.DataFrame) -> dict[str, Any]:
    """The metrics of an evaluated frame (one row per prompt).

    Needs ``response``, ``reward`` and ``gold_reward`` (NaN where there is none),
    and, for perplexity, ``nll`` and ``n_tokens`` (the evaluation LM's NLL and
    token count of the response), and, for the KL to the initial policy,
    ``kl_to_initial``. Gives the mean reward and its standard error, the same for
    the gold reward (None without one), the token-weighted perplexity (None
    without ``nll``), the mean per-response distinct-2 and repetition (share of
    repeated word 3-grams), the mean length in words and in evaluation-LM tokens,
    and the mean KL to the initial policy and its standard error (None without
    ``kl_to_initial``).
    """
    reward_mean, reward_sem = mean_and_sem(frame["reward"])
    gold_mean, gold_sem = mean_and_sem(frame["gold_reward"])
    responses = list(frame["response"])
    has_lm = "nll" in frame
    kl_mean, kl_sem = mean_and_sem(frame["kl_to_initial"]) if "kl_to_initial" in frame else (None, None)
    return {"n": len(frame),
            "n_empty": int((frame["n_tokens"] == 0).sum()) if has_lm else sum(not r.strip() for r in responses),
            "reward_mean": reward_mean, "reward_sem": reward_sem,
            "gold_reward_mean": gold_mean, "gold_reward_sem": gold_sem,
            "ppl": perplexity(list(zip(frame["nll"], frame["n_tokens"]))) if has_lm else None,
            "distinct_2": float(sum(map(distinct_n, responses)) / len(responses)),
            "repetition": float(sum(map(repetition, responses)) / len(responses)),
            "response_words": float(sum(len(words(r)) for r in responses) / len(responses)),
            "response_tokens": float(frame["n_tokens"].mean()) if has_lm else None,
            "kl_to_initial_mean": kl_mean, "kl_to_initial_sem": kl_sem}


def pick_best(scored: pd.DataFrame) -> pd.DataFrame:
    """The highest-reward row of each ``prompt_id`` (the first one on ties), prompts in their first-seen order."""
    scored = scored.reset_index(drop=True)
    return scored.loc[scored.groupby("prompt_id", sort=False)["reward"].idxmax()].reset_index(drop=True)


def score_generations(frame: pd.DataFrame, reward_model: str | dict[str, Any], evaluation_model: str,
                      scoring: Scoring, device: str, gold_source: str | None,
                      dtype: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add ``reward``, ``gold_reward``, ``nll`` and ``n_tokens`` to a frame of (prompt, response), scoring with
    the ``scoring`` block; return it and :func:`summarise_generations`'s metrics. The gold reward is that of
    the dataset source ``gold_source`` where it defines one (``synthetic``), NaN otherwise."""
    frame = score_frame(frame, reward_model, scoring, device, origin="evaluation", dtype=dtype)
    frame["gold_reward"] = gold_rewards(frame, gold_source)
    lm, lm_tokenizer = load_causal_lm(evaluation_model, resolve_device(device), dtype)
    nll = response_nll(lm, lm_tokenizer, list(frame["prompt"]), list(frame["response"]), scoring.max_length,
                       PERPLEXITY_BATCH_SIZE, scoring.prompt_sharing)
    frame["nll"] = [value for value, _ in nll]
    frame["n_tokens"] = [count for _, count in nll]
    return frame, summarise_generations(frame)


def write_evaluation(frame: pd.DataFrame, metrics: dict[str, Any], output_dir: str, provenance: dict) -> None:
    """``generations.parquet`` and ``metrics.json`` into ``output_dir``, each written atomically."""
    write_parquet(frame, Path(output_dir) / "generations.parquet", provenance)
    write_json(metrics, Path(output_dir) / "metrics.json")


def kl_to_initial(model, tokenizer, policy: str, initial_policy: str, prompts: list[str], responses: list[str],
                  max_length: int, device: str, dtype: str) -> list[float]:
    """KL(pi || rho) of each response (:func:`rrhf.evaluation.divergence.response_kl`), pi being ``model`` (loaded
    from ``policy``, with ``tokenizer``) and rho the model at ``initial_policy``, loaded here; exactly 0 without
    loading anything when both are the same path (an untrained policy). Raises when rho's tokenizer has another
    vocabulary."""
    if os.path.realpath(policy) == os.path.realpath(initial_policy):
        log.info("KL to the initial policy: %s is its own initial policy, KL 0", policy)
        return [0.0] * len(responses)
    reference, reference_tokenizer = load_causal_lm(initial_policy, resolve_device(device), dtype)
    if reference_tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ValueError(f"the policy {policy} and its initial policy {initial_policy} have different tokenizers; "
                         "the KL between them compares next-token distributions over one vocabulary")
    return response_kl(model, reference, tokenizer, prompts, responses, max_length, KL_BATCH_SIZE)


def evaluate_policy(policy: str, test_data: str, reward_model: str | dict[str, Any], evaluation_model: str,
                    output_dir: str, decoding: Decoding | dict[str, Any], scoring: Scoring | dict[str, Any],
                    prompts: PromptSubset | dict[str, Any], device: str = "auto", dtype: str = "auto",
                    log_path: str | None = None, initial_policy: str | None = None,
                    prompt_format: str | None = None) -> dict[str, Any]:
    """Stage entry point: generate on the selected test ``prompts`` with ``decoding``, cut, score with ``scoring``
    (and the gold reward, where the test data records a dataset with one); with ``initial_policy`` (rho, the
    untrained model the policy started from) also the KL(pi || rho) of each cut reply (``kl_to_initial``, its
    tokens as perplexity counts them, within ``scoring.max_length``); write the evaluation. ``prompt_format``
    makes the policy read its prompts in that format instead of its own (rrhf.models.prompt_formats)."""
    setup_logging(log_path)
    decoding, scoring = Decoding.coerce(decoding), Scoring.coerce(scoring)
    test = select_subset(read_parquet(test_data, ["prompt_id", "prompt"]), prompts, origin=test_data)
    model, tokenizer = load_causal_lm(policy, resolve_device(device), dtype)
    if prompt_format is not None:
        set_prompt_format(tokenizer, prompt_format)
    params = {k: v for k, v in decoding.as_config().items() if k != "method"}
    generated = generate_responses(model, tokenizer, list(test["prompt"]), decoding.method, num_responses=1,
                                   show_progress=True, max_prompt_tokens=PromptSubset.coerce(prompts).max_tokens,
                                   **params)
    frame = test[["prompt_id", "prompt"]].copy()
    frame["raw_response"] = [texts[0] for texts in generated]
    frame["response"] = [cut_at_turn(text) for text in frame["raw_response"]]
    if initial_policy is not None:
        frame["kl_to_initial"] = kl_to_initial(model, tokenizer, policy, initial_policy, list(frame["prompt"]),
                                               list(frame["response"]), scoring.max_length, device, dtype)
    del model
    frame, metrics = score_generations(frame, reward_model, evaluation_model, scoring, device,
                                       gold_source(test_data), dtype)
    log.info("evaluated %s on %d prompts: %s", policy, len(frame), metrics)
    dataset = facts_of(test_data)
    write_evaluation(frame, metrics, output_dir, {"stage": "evaluate_policy", "policy": policy,
                                                  "initial_policy": initial_policy,
                                                  "prompt_format": prompt_format_of(tokenizer),
                                                  "decoding": decoding.as_config(), "reward_model": reward_model,
                                                  "evaluation_model": evaluation_model,
                                                  DATASET_KEY: dataset})
    if prompt_format is None and add_evaluation(policy, output_dir, metrics, dataset):
        log.info("added the evaluation to %s's model card", policy)
    return metrics


def evaluate_provided(test_data: str, source: str, reward_model: str | dict[str, Any], evaluation_model: str,
                      output_dir: str, scoring: Scoring | dict[str, Any], prompts: PromptSubset | dict[str, Any],
                      device: str = "auto", dtype: str = "auto", log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: evaluate the dataset's own ``chosen`` or ``rejected`` replies (Table 2's good/bad rows)."""
    setup_logging(log_path)
    if source not in ("chosen", "rejected"):
        raise ValueError(f"source must be 'chosen' or 'rejected', not {source!r}")
    test = select_subset(read_parquet(test_data, ["prompt_id", "prompt", source]), prompts, origin=test_data)
    frame = test[["prompt_id", "prompt"]].copy()
    frame["response"] = [cut_at_turn(text) for text in test[source]]
    frame, metrics = score_generations(frame, reward_model, evaluation_model, Scoring.coerce(scoring), device,
                                       gold_source(test_data), dtype)
    log.info("evaluated the dataset's %s replies on %d prompts: %s", source, len(frame), metrics)
    write_evaluation(frame, metrics, output_dir, {"stage": "evaluate_provided", "source": source,
                                                  "reward_model": reward_model,
                                                  "evaluation_model": evaluation_model,
                                                  DATASET_KEY: facts_of(test_data)})
    return metrics


def evaluate_best_of_n(policy: str, test_data: str, reward_model: str | dict[str, Any], output_dir: str, n: int,
                       best_of_n: BestOfN | dict[str, Any], scoring: Scoring | dict[str, Any],
                       prompts: PromptSubset | dict[str, Any], device: str = "auto", dtype: str = "auto",
                       log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: best-of-n, an evaluation without training. Sample ``n`` top-p responses per test prompt
    (the ``best_of_n`` block's sampling), cut each at the next turn, keep the one the reward model scores
    highest.

    Writes ``samples.parquet`` (all n per prompt, with rewards), ``generations.parquet``
    (the kept ones) and ``metrics.json`` (:func:`summarise_generations`; no
    perplexity, as in the paper; ``best_of`` n and the mean reward of all samples).
    """
    setup_logging(log_path)
    sampling = BestOfN.coerce(best_of_n).as_config()
    test = select_subset(read_parquet(test_data, ["prompt_id", "prompt"]), prompts, origin=test_data)
    model, tokenizer = load_causal_lm(policy, resolve_device(device), dtype)
    generated = generate_responses(model, tokenizer, list(test["prompt"]), "top_p", num_responses=n,
                                   show_progress=True, max_prompt_tokens=PromptSubset.coerce(prompts).max_tokens,
                                   **sampling)
    del model
    samples = pd.DataFrame([(pid, prompt, k, raw) for pid, prompt, texts in
                            zip(test["prompt_id"], test["prompt"], generated) for k, raw in enumerate(texts)],
                           columns=["prompt_id", "prompt", "response_index", "raw_response"])
    samples["response"] = [cut_at_turn(text) for text in samples["raw_response"]]
    samples = score_frame(samples, reward_model, Scoring.coerce(scoring), device, origin="best-of-n evaluation",
                          dtype=dtype)
    best = pick_best(samples)
    best["gold_reward"] = gold_rewards(best, gold_source(test_data))
    metrics = {**summarise_generations(best), "best_of": n, "sampled_reward_mean": float(samples["reward"].mean())}
    log.info("best-of-%d of %s on %d prompts: %s", n, policy, len(best), metrics)
    provenance = {"stage": "evaluate_best_of_n", "policy": policy, "n": n, "sampling": sampling,
                  "reward_model": reward_model, DATASET_KEY: facts_of(test_data)}
    write_parquet(samples, Path(output_dir) / "samples.parquet", provenance)
    write_evaluation(best, metrics, output_dir, provenance)
    return metrics
