"""Evaluation: generate one response per test prompt, cut it at the next turn, score reward and perplexity."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from rrhf.data import select_prompts
from rrhf.gold_reward import gold_rewards
from rrhf.io import read_parquet, setup_logging, write_json, write_parquet
from rrhf.models import cut_pair, load_causal_lm, resolve_device, usable_length
from rrhf.prompt_sharing import fill_batches, group_by_prompt, sharing_decision
from rrhf.query_batches import QueryExample, causal_lm_sharing_problem, collate_queries, keeps_logits, response_logprobs
from rrhf.rewards import score_frame
from rrhf.sampling import generate_responses
from rrhf.text_metrics import distinct_n, repetition, words

log = logging.getLogger("rrhf")
TURN_MARKER = re.compile(r"Human:|Assistant:")


def cut_at_turn(text: str) -> str:
    """The response up to the first "Human:" or "Assistant:" (where the model starts the next turn),
    stripped on the right."""
    match = TURN_MARKER.search(text)
    return (text[: match.start()] if match else text).rstrip()


@torch.no_grad()
def response_nll(model, tokenizer, prompts: list[str], responses: list[str], max_length: int = 1024,
                 batch_size: int = 16, prompt_sharing: str = "auto") -> list[tuple[float, int]]:
    """(summed negative log-likelihood, token count) of each response given its prompt, no EOS added.

    A pair longer than ``max_length`` (capped at the model's positions) loses the start of its prompt
    (:func:`rrhf.models.cut_pair`), each pair on its own; how many were cut is logged. Prompts and responses
    are tokenized once, in two batched calls. Responses with the same (cut) prompt run packed after it, the
    prompt computed once, where ``prompt_sharing`` (config ``scoring.prompt_sharing``) and the model allow
    it; batches hold at most ``batch_size`` responses, sorted by length."""
    device = next(model.parameters()).device
    max_length = usable_length(model, max_length)
    prompt_ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(list(responses), add_special_tokens=False)["input_ids"]
    encoded = [cut_pair(p, r, max_length) for p, r in zip(prompt_ids, response_ids)]
    cut = sum(len(p) + len(r) > max_length for p, r in zip(prompt_ids, response_ids))
    if cut:
        log.warning("perplexity: cut %d of %d prompts from the left to fit prompt + response in %d tokens", cut,
                    len(encoded), max_length)
    out: list[tuple[float, int]] = [(0.0, 0)] * len(encoded)
    groups = [(prompt, [i for i in members if len(encoded[i][0]) > encoded[i][1]])
              for prompt, members in group_by_prompt(encoded)]
    groups = sorted((g for g in groups if g[1]), key=lambda g: len(g[0]) + max(len(encoded[i][0]) for i in g[1]))
    packed = any(len(members) > 1 for _, members in groups) and sharing_decision(
        prompt_sharing, "scoring.prompt_sharing", lambda: causal_lm_sharing_problem(model), "perplexity")
    keep = keeps_logits(model)
    for indices in fill_batches([len(members) for _, members in groups], batch_size):
        batch = [groups[g] for g in indices]
        examples = [QueryExample(prompt, [encoded[i][0][len(prompt):] for i in members], [0.0] * len(members))
                    for prompt, members in batch]
        tensors = collate_queries(examples, tokenizer.pad_token_id, 1 << 30, float("inf"), packed, keep)
        logprobs, mask = response_logprobs(model, {k: v.to(device) for k, v in tensors.items()})
        sums, counts = (logprobs * mask).sum(-1).tolist(), mask.sum(-1).tolist()
        for b, (_, members) in enumerate(batch):
            for k, i in enumerate(members):
                out[i] = (-sums[b][k], int(counts[b][k]))
    return out


def perplexity(nll_and_counts: list[tuple[float, int]]) -> float:
    """exp(total NLL / total tokens) over all responses (token-weighted); NaN when there are no tokens."""
    tokens = sum(n for _, n in nll_and_counts)
    return math.exp(sum(nll for nll, _ in nll_and_counts) / tokens) if tokens else float("nan")


def mean_and_sem(values: pd.Series) -> tuple[float | None, float | None]:
    """(mean, standard error of the mean = sample std / sqrt(n)) of the non-missing values; None where undefined."""
    values = values.dropna().astype(float)
    mean = float(values.mean()) if len(values) else None
    sem = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return mean, sem


def summarise_generations(frame: pd.DataFrame) -> dict[str, Any]:
    """The metrics of an evaluated frame (one row per prompt).

    Needs ``response``, ``reward`` and ``gold_reward`` (NaN where there is none),
    and, for perplexity, ``nll`` and ``n_tokens`` (the evaluation LM's NLL and
    token count of the response). Gives the mean reward and its standard error,
    the same for the gold reward (None without one), the token-weighted perplexity
    (None without ``nll``), the mean per-response distinct-2 and repetition (share
    of repeated word 3-grams), and the mean length in words and in evaluation-LM
    tokens.
    """
    reward_mean, reward_sem = mean_and_sem(frame["reward"])
    gold_mean, gold_sem = mean_and_sem(frame["gold_reward"])
    responses = list(frame["response"])
    has_lm = "nll" in frame
    return {"n": len(frame),
            "n_empty": int((frame["n_tokens"] == 0).sum()) if has_lm else sum(not r.strip() for r in responses),
            "reward_mean": reward_mean, "reward_sem": reward_sem,
            "gold_reward_mean": gold_mean, "gold_reward_sem": gold_sem,
            "ppl": perplexity(list(zip(frame["nll"], frame["n_tokens"]))) if has_lm else None,
            "distinct_2": float(sum(map(distinct_n, responses)) / len(responses)),
            "repetition": float(sum(map(repetition, responses)) / len(responses)),
            "response_words": float(sum(len(words(r)) for r in responses) / len(responses)),
            "response_tokens": float(frame["n_tokens"].mean()) if has_lm else None}


def pick_best(scored: pd.DataFrame) -> pd.DataFrame:
    """The highest-reward row of each ``prompt_id`` (the first one on ties), prompts in their first-seen order."""
    scored = scored.reset_index(drop=True)
    return scored.loc[scored.groupby("prompt_id", sort=False)["reward"].idxmax()].reset_index(drop=True)


def score_generations(frame: pd.DataFrame, reward_model: str, evaluation_model: str, scoring: dict[str, Any],
                      device: str, dataset_source: str | None = None,
                      dtype: str = "auto") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Add ``reward``, ``gold_reward``, ``nll`` and ``n_tokens`` to a frame of (prompt, response); return it and
    :func:`summarise_generations`'s metrics. The gold reward is that of ``dataset_source``
    where the source defines one (``synthetic``), NaN otherwise."""
    sharing = scoring.get("prompt_sharing", "auto")
    frame = score_frame(frame, reward_model, scoring["batch_size"], scoring["max_length"], device,
                        origin="evaluation", dtype=dtype, prompt_sharing=sharing)
    frame["gold_reward"] = gold_rewards(frame, dataset_source)
    lm, lm_tokenizer = load_causal_lm(evaluation_model, resolve_device(device), dtype)
    nll = response_nll(lm, lm_tokenizer, list(frame["prompt"]), list(frame["response"]), scoring["max_length"],
                       prompt_sharing=sharing)
    frame["nll"] = [value for value, _ in nll]
    frame["n_tokens"] = [count for _, count in nll]
    return frame, summarise_generations(frame)


def write_evaluation(frame: pd.DataFrame, metrics: dict[str, Any], output_dir: str, provenance: dict) -> None:
    """``generations.parquet`` and ``metrics.json`` into ``output_dir``, each written atomically."""
    write_parquet(frame, Path(output_dir) / "generations.parquet", provenance)
    write_json(metrics, Path(output_dir) / "metrics.json")


def evaluate_policy(policy: str, test_data: str, reward_model: str, evaluation_model: str, output_dir: str,
                    decoding: dict[str, Any], scoring: dict[str, Any], limit: int | None, selection_seed: int,
                    device: str = "auto", dtype: str = "auto", dataset_source: str | None = None,
                    log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: generate on the test prompts with ``decoding``, cut, score; write the evaluation."""
    setup_logging(log_path)
    test = select_prompts(read_parquet(test_data, ["prompt_id", "prompt"]), limit, selection_seed,
                          origin=test_data, key="data.test_prompts")
    model, tokenizer = load_causal_lm(policy, resolve_device(device), dtype)
    params = {k: v for k, v in decoding.items() if k != "method"}
    generated = generate_responses(model, tokenizer, list(test["prompt"]), decoding["method"], num_responses=1,
                                   show_progress=True, **params)
    del model
    frame = test[["prompt_id", "prompt"]].copy()
    frame["raw_response"] = [texts[0] for texts in generated]
    frame["response"] = [cut_at_turn(text) for text in frame["raw_response"]]
    frame, metrics = score_generations(frame, reward_model, evaluation_model, scoring, device, dataset_source, dtype)
    log.info("evaluated %s on %d prompts: %s", policy, len(frame), metrics)
    write_evaluation(frame, metrics, output_dir, {"stage": "evaluate_policy", "policy": policy,
                                                  "decoding": decoding, "reward_model": reward_model,
                                                  "evaluation_model": evaluation_model})
    return metrics


def evaluate_provided(test_data: str, source: str, reward_model: str, evaluation_model: str, output_dir: str,
                      scoring: dict[str, Any], limit: int | None, selection_seed: int, device: str = "auto",
                      dtype: str = "auto", dataset_source: str | None = None,
                      log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: evaluate the dataset's own ``chosen`` or ``rejected`` replies (Table 2's good/bad rows)."""
    setup_logging(log_path)
    if source not in ("chosen", "rejected"):
        raise ValueError(f"source must be 'chosen' or 'rejected', not {source!r}")
    test = select_prompts(read_parquet(test_data, ["prompt_id", "prompt", source]), limit, selection_seed,
                          origin=test_data, key="data.test_prompts")
    frame = test[["prompt_id", "prompt"]].copy()
    frame["response"] = [cut_at_turn(text) for text in test[source]]
    frame, metrics = score_generations(frame, reward_model, evaluation_model, scoring, device, dataset_source, dtype)
    log.info("evaluated the dataset's %s replies on %d prompts: %s", source, len(frame), metrics)
    write_evaluation(frame, metrics, output_dir, {"stage": "evaluate_provided", "source": source,
                                                  "reward_model": reward_model,
                                                  "evaluation_model": evaluation_model})
    return metrics


def evaluate_best_of_n(policy: str, test_data: str, reward_model: str, output_dir: str, n: int,
                       sampling: dict[str, Any], scoring: dict[str, Any], limit: int | None, selection_seed: int,
                       device: str = "auto", dtype: str = "auto", dataset_source: str | None = None,
                       log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: best-of-n, an evaluation without training. Sample ``n`` top-p responses per test prompt,
    cut each at the next turn, keep the one the reward model scores highest.

    Writes ``samples.parquet`` (all n per prompt, with rewards), ``generations.parquet``
    (the kept ones) and ``metrics.json`` (:func:`summarise_generations`; no
    perplexity, as in the paper; ``best_of`` n and the mean reward of all samples).
    """
    setup_logging(log_path)
    test = select_prompts(read_parquet(test_data, ["prompt_id", "prompt"]), limit, selection_seed,
                          origin=test_data, key="data.test_prompts")
    model, tokenizer = load_causal_lm(policy, resolve_device(device), dtype)
    generated = generate_responses(model, tokenizer, list(test["prompt"]), "top_p", num_responses=n,
                                   show_progress=True, **sampling)
    del model
    samples = pd.DataFrame([(pid, prompt, k, raw) for pid, prompt, texts in
                            zip(test["prompt_id"], test["prompt"], generated) for k, raw in enumerate(texts)],
                           columns=["prompt_id", "prompt", "response_index", "raw_response"])
    samples["response"] = [cut_at_turn(text) for text in samples["raw_response"]]
    samples = score_frame(samples, reward_model, scoring["batch_size"], scoring["max_length"], device,
                          origin="best-of-n evaluation", dtype=dtype,
                          prompt_sharing=scoring.get("prompt_sharing", "auto"))
    best = pick_best(samples)
    best["gold_reward"] = gold_rewards(best, dataset_source)
    metrics = {**summarise_generations(best), "best_of": n, "sampled_reward_mean": float(samples["reward"].mean())}
    log.info("best-of-%d of %s on %d prompts: %s", n, policy, len(best), metrics)
    provenance = {"stage": "evaluate_best_of_n", "policy": policy, "n": n, "sampling": sampling,
                  "reward_model": reward_model}
    write_parquet(samples, Path(output_dir) / "samples.parquet", provenance)
    write_evaluation(best, metrics, output_dir, provenance)
    return metrics
