"""Builds for the tiny default: a byte-level BPE tokenizer and small GPT-2-style models.

These play the roles of the paper's models (DESIGN.md §4) so the whole
workflow runs offline on a CPU in minutes.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import pandas as pd
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from rrhf.io import atomic_path, read_parquet, setup_logging

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
log = logging.getLogger("rrhf")


def transcripts(frame: pd.DataFrame) -> list[str]:
    """Every full conversation in a normalised frame: prompt + chosen and prompt + rejected."""
    return [p + c for p, c in zip(frame["prompt"], frame["chosen"])] + [
        p + r for p, r in zip(frame["prompt"], frame["rejected"])]


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on ``texts`` with EOS (also BOS) and PAD tokens."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[EOS_TOKEN, PAD_TOKEN], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN,
                                   pad_token=PAD_TOKEN, model_max_length=1024)


def build_tokenizer(train_data: str, output_dir: str, vocab_size: int, log_path: str | None = None) -> None:
    """Stage entry point: train the tokenizer on the training transcripts and save it."""
    setup_logging(log_path)
    frame = read_parquet(train_data, ["prompt", "chosen", "rejected"])
    tokenizer = train_tokenizer(transcripts(frame), vocab_size)
    log.info("trained a byte-level BPE tokenizer with %d tokens on %d transcripts", len(tokenizer), 2 * len(frame))
    with atomic_path(output_dir, directory=True) as tmp:
        tokenizer.save_pretrained(tmp)


def new_gpt2(tokenizer, architecture: dict[str, Any], seed: int) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2-style LM sized by ``architecture`` (n_layer, n_embd, n_head, n_positions)."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=architecture.get("n_positions", 256),
        n_embd=architecture.get("n_embd", 128),
        n_layer=architecture.get("n_layer", 2),
        n_head=architecture.get("n_head", 4),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)
