"""Builds for the tiny default: a byte-level BPE tokenizer and small LLaMA- or GPT-2-style models.

These play the roles of the paper's models so the whole
workflow runs offline on a CPU in minutes.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable

import pandas as pd
import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from rrhf.config.blocks import Architecture, Build
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


def build_tokenizer(train_data: str, output_dir: str, build: Build | dict[str, Any],
                    log_path: str | None = None) -> None:
    """Stage entry point: train the tokenizer of a ``tokenizer`` build (its vocab_size) on the training
    transcripts and save it."""
    setup_logging(log_path)
    build = Build.coerce(build)
    frame = read_parquet(train_data, ["prompt", "chosen", "rejected"])
    tokenizer = train_tokenizer(transcripts(frame), build.vocab_size)
    log.info("trained a byte-level BPE tokenizer with %d tokens on %d transcripts", len(tokenizer), 2 * len(frame))
    with atomic_path(output_dir, directory=True) as tmp:
        tokenizer.save_pretrained(tmp)


def llama_intermediate_size(hidden_size: int) -> int:
    """LLaMA's SwiGLU width: 8/3 of the hidden size, rounded up to a multiple of 32."""
    return 32 * math.ceil(8 * hidden_size / 3 / 32)


def new_causal_lm(tokenizer, architecture: Architecture | dict[str, Any], seed: int):
    """A freshly initialised causal LM sized by ``architecture`` (a build's; keys not given take the schema's
    defaults).

    ``family`` "llama" gives a LLaMA-style decoder (rotary positions, RMSNorm, SwiGLU, tied embeddings) like
    the paper's policies; "gpt2" a GPT-2 one (learned absolute positions) like the paper's evaluation LM.
    Sizes: ``n_layer`` blocks, ``n_embd`` hidden size, ``n_head`` heads, ``n_positions`` longest sequence.
    """
    architecture = Architecture.coerce(architecture)
    torch.manual_seed(seed)
    family = architecture.family
    sizes = {"n_layer": architecture.n_layer, "n_embd": architecture.n_embd, "n_head": architecture.n_head,
             "n_positions": architecture.n_positions}
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id}
    if family == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), **sizes, **special))
    if family != "llama":
        raise ValueError(f"architecture family must be 'llama' or 'gpt2', not {family!r}")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=sizes["n_embd"],
                         intermediate_size=llama_intermediate_size(sizes["n_embd"]),
                         num_hidden_layers=sizes["n_layer"], num_attention_heads=sizes["n_head"],
                         num_key_value_heads=sizes["n_head"], max_position_embeddings=sizes["n_positions"],
                         tie_word_embeddings=True, **special)
    return LlamaForCausalLM(config)
