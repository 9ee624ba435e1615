"""Causal-LM training: pre-training on whole transcripts and SFT on prompt + chosen.

SFT puts the loss on response tokens only (the prompt's labels are -100).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from rrhf.config.block_checks import lora_pretrain_problem
from rrhf.config.blocks import Build, Precision, Training
from rrhf.io import read_parquet, start_job
from rrhf.models.adapters import add_lora
from rrhf.models.loading import load_causal_lm_for_training, load_tokenizer
from rrhf.models.tiny import new_causal_lm, transcripts
from rrhf.models.token_spans import encode_pair
from rrhf.padding import pad_batch, pad_right
from rrhf.training.loop import train_model

IGNORE_INDEX = -100
log = logging.getLogger("rrhf")


def lm_examples(tokenizer, prompts: list[str], responses: list[str], max_length: int,
                loss_on_prompt: bool) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example; labels are -100 on the prompt unless ``loss_on_prompt``."""
    examples = []
    for prompt, response in zip(prompts, responses):
        ids, start = encode_pair(tokenizer, prompt, response, max_length)
        labels = list(ids) if loss_on_prompt else [IGNORE_INDEX] * start + ids[start:]
        examples.append((ids, labels))
    return examples


def collate_lm(examples: list[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on padding), each (B, T)."""
    input_ids, attention_mask = pad_batch([e[0] for e in examples], pad_token_id)
    labels = pad_right([e[1] for e in examples], IGNORE_INDEX)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def lm_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean token cross-entropy over the labelled tokens."""
    return model(**batch).loss, {}


def fit_lm(model, tokenizer, examples, training: Training, precision: Precision, description: str,
           checkpoint: dict[str, Any] | None = None, tracking: dict[str, Any] | None = None,
           output_dir: str | None = None):
    """Train a causal LM on (input_ids, labels) examples (resuming from ``checkpoint``'s latest, each log row sent
    to ``tracking``'s trackers under ``output_dir``); returns the TrainingResult."""
    pad = tokenizer.pad_token_id
    return train_model(model, examples, [len(e[0]) for e in examples], lambda b: collate_lm(b, pad),
                       lm_loss, training, precision, description, checkpoint, tracking=tracking,
                       output_dir=output_dir)


def pretrain_lm(tokenizer_dir: str, train_data: str, output_dir: str, build: Build | dict[str, Any],
                precision: Precision | dict[str, Any], checkpoint: dict[str, Any] | None = None,
                tracking: dict[str, Any] | None = None,
                log_path: str | None = None) -> None:
    """Stage entry point: pre-train a fresh LM (the build's architecture, LLaMA- or GPT-2-style) on every
    training transcript."""
    start_job(log_path, output_dir)
    build, precision = Build.coerce(build), Precision.coerce(precision)
    params = build.training
    if params.lora is not None:
        raise ValueError(lora_pretrain_problem("build.training"))
    tokenizer = load_tokenizer(tokenizer_dir, padding_side="right")
    frame = read_parquet(train_data, ["prompt", "chosen", "rejected"])
    texts = transcripts(frame)
    examples = lm_examples(tokenizer, [""] * len(texts), texts, params.max_length, loss_on_prompt=True)
    model = new_causal_lm(tokenizer, build.architecture, params.seed)
    log.info("pre-training a %.2fM-parameter LM on %d transcripts", model.num_parameters() / 1e6, len(examples))
    result = fit_lm(model, tokenizer, examples, params, precision, "pretrain", checkpoint, tracking, output_dir)
    result.save(output_dir, tokenizer, {"stage": "pretrain_lm", "data": [train_data], "build": build.as_config()})


def train_sft(init_model: str, train_data: str, output_dir: str, build: Build | dict[str, Any],
              precision: Precision | dict[str, Any], checkpoint: dict[str, Any] | None = None,
              tracking: dict[str, Any] | None = None,
              log_path: str | None = None) -> None:
    """Stage entry point: supervised fine-tuning on prompt + chosen (at most the build's max_examples pairs),
    loss on the response tokens only."""
    start_job(log_path, output_dir)
    build, precision = Build.coerce(build), Precision.coerce(precision)
    params = build.training
    model, tokenizer = load_causal_lm_for_training(init_model)
    model = add_lora(model, params.lora)
    frame = read_parquet(train_data, ["prompt", "chosen"])
    if build.max_examples is not None:
        frame = frame.sample(n=min(build.max_examples, len(frame)), random_state=params.seed)
    examples = lm_examples(tokenizer, list(frame["prompt"]), list(frame["chosen"]), params.max_length,
                           loss_on_prompt=False)
    log.info("SFT of %s on %d prompt+chosen examples", init_model, len(examples))
    result = fit_lm(model, tokenizer, examples, params, precision, "sft", checkpoint, tracking, output_dir)
    result.save(output_dir, tokenizer, {"stage": "train_sft", "init": init_model, "data": [train_data],
                                        "build": build.as_config()})
