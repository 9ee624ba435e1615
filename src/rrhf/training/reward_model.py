"""Pairwise (Bradley-Terry) reward model: a one-label sequence classifier trained on chosen vs rejected."""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd
from accelerate.utils import set_seed
from transformers import AutoModelForSequenceClassification

from rrhf.config.blocks import Build, Precision
from rrhf.data.dataset_facts import gold_source
from rrhf.data.gold_reward import gold_rewards
from rrhf.io import read_parquet, start_job
from rrhf.losses import pairwise_accuracy
from rrhf.models.adapters import add_lora
from rrhf.models.loading import load_for_training, load_tokenizer
from rrhf.models.value_head_policy import keep_bottom_layers
from rrhf.scoring.rewards import encode_for_reward, score
from rrhf.statistics import ordered_like_gold, spearman
from rrhf.training.loop import train_model
from rrhf.training.pairwise import collate_pairs, reward_pair_loss

log = logging.getLogger("rrhf")


def held_out_metrics(test: pd.DataFrame, chosen: list[float], rejected: list[float],
                     dataset_source: str | None) -> dict[str, Any]:
    """Pairwise accuracy of rewards on held-out pairs: against the labels and, where the dataset has a gold
    reward, against the gold order (pairs of equal gold skipped); also how often the labels follow gold."""
    metrics: dict[str, Any] = {"test_accuracy": pairwise_accuracy(chosen, rejected), "test_pairs": len(test)}
    gold_chosen = gold_rewards(test.rename(columns={"chosen": "response"}), dataset_source)
    gold_rejected = gold_rewards(test.rename(columns={"rejected": "response"}), dataset_source)
    if not any(math.isnan(g) for g in gold_chosen + gold_rejected):
        right, total = ordered_like_gold(chosen, rejected, gold_chosen, gold_rejected)
        labels_right, _ = ordered_like_gold([1.0] * len(test), [0.0] * len(test), gold_chosen, gold_rejected)
        metrics.update(test_gold_accuracy=right / total if total else None, test_gold_pairs=total,
                       test_label_gold_agreement=labels_right / total if total else None)
    return metrics


def on_policy_agreement(replies: pd.DataFrame, pairs: int) -> dict[str, dict[str, float]]:
    """Per policy (and ``all``): Spearman of ``reward`` with ``gold_reward`` over its held-out on-policy
    ``replies`` (both replies of each pair; columns policy, reward, gold_reward), and the share of its pairs
    (consecutive halves: row i and row i + ``pairs``) the rewards order like gold (pairs of equal gold skipped)."""
    first, second = replies.iloc[:pairs].reset_index(drop=True), replies.iloc[pairs:].reset_index(drop=True)
    result = {}
    for policy in [*sorted(replies["policy"].unique()), "all"]:
        mine = first["policy"] == policy if policy != "all" else first["policy"].notna()
        right, total = ordered_like_gold(list(first.loc[mine, "reward"]), list(second.loc[mine, "reward"]),
                                         list(first.loc[mine, "gold_reward"]), list(second.loc[mine, "gold_reward"]))
        both = pd.concat([first[mine], second[mine]])
        result[policy] = {"replies": len(both), "spearman": spearman(list(both["reward"]), list(both["gold_reward"])),
                          "gold_accuracy": right / total if total else None, "gold_pairs": total}
    return result


def train_reward_model(init_model: str, train_data: str, test_data: str, output_dir: str,
                       build: Build | dict[str, Any], precision: Precision | dict[str, Any],
                       on_policy_data: str | None = None, checkpoint: dict[str, Any] | None = None,
                       tracking: dict[str, Any] | None = None, log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: train the reward model of a ``reward`` build, report held-out pairwise accuracy (and,
    where the test data records a dataset with a gold reward, accuracy against gold), save it.

    With ``on_policy_data`` (rrhf.sampling.preference_collection), its pairs on the policies' own replies are
    trained on besides the dataset's. Writes the model, ``train_log.parquet`` and ``metrics.json``
    (:func:`held_out_metrics`, ``final_train_loss`` and the pair counts) into ``output_dir``; returns the
    metrics.
    """
    start_job(log_path, output_dir)
    build, precision = Build.coerce(build), Precision.coerce(precision)
    params = build.training
    tokenizer = load_tokenizer(init_model, padding_side="right")
    frame = read_parquet(train_data, ["prompt", "chosen", "rejected"])
    if build.max_examples is not None:
        frame = frame.sample(n=min(build.max_examples, len(frame)), random_state=params.seed)
    dataset_pairs = len(frame)
    on_policy = None
    if on_policy_data is not None:
        on_policy = read_parquet(on_policy_data, ["prompt", "chosen", "rejected", "policy", "chosen_gold",
                                                  "rejected_gold", "held_out"])
        frame = pd.concat([frame, on_policy.loc[~on_policy["held_out"], ["prompt", "chosen", "rejected"]]],
                          ignore_index=True)
    examples = [(encode_for_reward(tokenizer, p, c, params.max_length),
                 encode_for_reward(tokenizer, p, r, params.max_length))
                for p, c, r in zip(frame["prompt"], frame["chosen"], frame["rejected"])]
    set_seed(params.seed)  # the new one-label head is initialised here, before train_model seeds
    model = load_for_training(init_model, AutoModelForSequenceClassification, num_labels=1)
    keep_bottom_layers(model, build.backbone_layers)
    model.config.pad_token_id = tokenizer.pad_token_id
    model = add_lora(model, params.lora, "sequence_classification")  # with LoRA the score head trains in full
    log.info("training a reward model from %s on %d pairs (%d of the dataset, %d on-policy)", init_model,
             len(examples), dataset_pairs, len(examples) - dataset_pairs)
    result = train_model(model, examples, [max(len(a), len(b)) for a, b in examples],
                         lambda b: collate_pairs(b, tokenizer.pad_token_id), reward_pair_loss, params, precision,
                         "reward", checkpoint, tracking=tracking, output_dir=output_dir)

    test = read_parquet(test_data, ["prompt", "chosen", "rejected"])
    plain = result.plain_model
    prompts = list(test["prompt"])
    chosen = score(plain, tokenizer, prompts, list(test["chosen"]), max_length=params.max_length)
    rejected = score(plain, tokenizer, prompts, list(test["rejected"]), max_length=params.max_length)
    metrics = {**held_out_metrics(test, chosen, rejected, gold_source(test_data)),
               "final_train_loss": result.rows[-1]["loss"], "dataset_pairs": dataset_pairs,
               "on_policy_pairs": len(examples) - dataset_pairs}
    if on_policy is not None and on_policy["held_out"].any():
        held_out = on_policy[on_policy["held_out"]]
        replies = pd.DataFrame({"policy": [*held_out["policy"], *held_out["policy"]],
                                "prompt": [*held_out["prompt"], *held_out["prompt"]],
                                "response": [*held_out["chosen"], *held_out["rejected"]],
                                "gold_reward": [*held_out["chosen_gold"], *held_out["rejected_gold"]]})
        replies["reward"] = score(plain, tokenizer, list(replies["prompt"]), list(replies["response"]),
                                  max_length=params.max_length)
        metrics["on_policy_held_out"] = on_policy_agreement(replies, len(held_out))
    log.info("reward model held-out pairwise accuracy %.4f on %d pairs; %s", metrics["test_accuracy"], len(test),
             {k: v for k, v in metrics.items() if k.startswith("test_gold") or k.startswith("test_label")})
    if "on_policy_held_out" in metrics:
        log.info("on the policies' own held-out replies: %s", metrics["on_policy_held_out"])
    result.save(output_dir, tokenizer, {"stage": "train_reward_model", "init": init_model,
                                        "data": [path for path in (train_data, on_policy_data) if path],
                                        "build": build.as_config()}, metrics)
    return metrics
