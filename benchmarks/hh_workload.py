"""The workload of benchmarks/rrhf_step.py and benchmarks/score_responses.py: real HH queries with K replies.

Each query is an HH prompt with K replies: its own chosen and rejected reply and the chosen and rejected
replies of the next queries, tokenized by a byte-level BPE tokenizer trained on the file's transcripts and
cut to ``max_length`` tokens per prompt + reply. Without an HH file the project's synthetic HH data
stands in. Also: the matmul peak of the device, measured in the same run, and the FLOPs a forward pass
of a model of the given shape takes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_HH = REPOSITORY.parent / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"


def machine(device: str = "cpu") -> str:
    """The machine a figure was measured on: the CPU model and its cores (lscpu), and the GPU on CUDA."""
    import os
    import subprocess

    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        import platform

        cpu = platform.processor() or "unknown CPU"
    text = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    if str(device).startswith("cuda") and torch.cuda.is_available():
        text += f"; {torch.cuda.get_device_name(0)}"
    return f"measured on {text}"


def add_workload_arguments(parser, queries: int) -> None:
    """The command-line options both benchmarks share: data, K, cut, model shape, device."""
    parser.add_argument("--hh", help="an Anthropic HH jsonl(.gz) file")
    parser.add_argument("--queries", type=int, default=queries)
    parser.add_argument("--responses", type=int, default=6, help="replies per query (K)")
    parser.add_argument("--max-length", type=int, default=192, help="tokens of prompt + reply")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--tokenizer-vocabulary", type=int, default=8192, help="BPE trained on the file")
    parser.add_argument("--family", choices=["llama", "gpt2"], default="llama")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def load_pairs(hh_file: str | None, count: int):
    """(normalised pairs frame, where they came from): an Anthropic HH file when given and present, else
    synthetic pairs."""
    from rrhf.data.preference_pairs import load_anthropic_jsonl, normalise_pairs
    from rrhf.data.synthetic_hh import generate_pairs

    path = Path(hh_file) if hh_file else DEFAULT_HH
    if path.exists():
        return load_anthropic_jsonl(path), f"real HH pairs from {path.name}"
    return normalise_pairs(generate_pairs(count, seed=0), origin="benchmark")[0], "synthetic HH pairs (no HH file)"


def hh_queries(frame, tokenizer, queries: int, responses: int, max_length: int):
    """``queries`` QueryExamples (rrhf.batching.query_batches) of ``responses`` replies each: the query's chosen and
    rejected reply, then other queries' replies, all ending in EOS, cut together to ``max_length``."""
    from rrhf.batching.query_batches import QueryExample, encode_query

    rows = frame.head(queries + responses).reset_index(drop=True)
    examples = []
    for i in range(queries):
        replies = []
        for j in range(i, i + responses):
            replies += [rows["chosen"].iloc[j], rows["rejected"].iloc[j]]
        prompt, encoded = encode_query(tokenizer, rows["prompt"].iloc[i], replies[:responses], max_length)
        examples.append(QueryExample(prompt, encoded, [float(-k) for k in range(responses)]))
    return examples


def bpe_tokenizer(frame, vocab_size: int):
    from rrhf.models.tiny import train_tokenizer, transcripts

    return train_tokenizer(transcripts(frame), vocab_size)


@dataclass
class Shape:
    """A decoder's sizes, for FLOP counts."""

    layers: int
    hidden: int
    heads: int
    vocabulary: int

    @property
    def block_parameters(self) -> int:
        """Weights of one block's matmuls (attention 4 h^2 + SwiGLU 3 h * 8/3 h = 12 h^2, as GPT-2's)."""
        return 12 * self.hidden * self.hidden

    def forward_flops(self, tokens: int, attended: int, head_tokens: int) -> float:
        """Multiply-adds x 2 of a forward pass over ``tokens`` tokens whose attention covers ``attended``
        (query, key) pairs in all (both score and value products), with the LM head on ``head_tokens``."""
        return 2.0 * (self.layers * (tokens * self.block_parameters + 2 * attended * self.hidden)
                      + head_tokens * self.hidden * self.vocabulary)


def new_model(kind: str, shape: Shape, family: str, dtype: torch.dtype, device: str):
    """A randomly initialised causal LM (``lm``) or one-label sequence classifier (``reward``) of ``shape``."""
    from transformers import (
        GPT2Config,
        GPT2ForSequenceClassification,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        LlamaForSequenceClassification,
    )

    from rrhf.models.tiny import llama_intermediate_size

    torch.manual_seed(0)
    if family == "gpt2":
        config = GPT2Config(vocab_size=shape.vocabulary, n_embd=shape.hidden, n_layer=shape.layers,
                            n_head=shape.heads, n_positions=1024, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            num_labels=1, pad_token_id=1)
        model = (GPT2LMHeadModel if kind == "lm" else GPT2ForSequenceClassification)(config)
    else:
        config = LlamaConfig(vocab_size=shape.vocabulary, hidden_size=shape.hidden,
                             intermediate_size=llama_intermediate_size(shape.hidden),
                             num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                             num_key_value_heads=shape.heads, max_position_embeddings=1024, num_labels=1,
                             pad_token_id=1, tie_word_embeddings=True)
        model = (LlamaForCausalLM if kind == "lm" else LlamaForSequenceClassification)(config)
    return model.to(device=device, dtype=dtype)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of the best of ``repeats`` (size x size) @ (size x size) products on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        (a @ b).sum().item()
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def processed(batch: dict, shape: Shape) -> tuple[int, int, int]:
    """(tokens processed, (query, key) pairs attended, tokens the LM head runs on) of a collated batch."""
    tokens = attended = head = 0
    c = 0
    while f"input_ids_{c}" in batch:
        rows, length = batch[f"input_ids_{c}"].shape
        tokens += rows * length
        attended += rows * length * length
        head += rows * (len(batch[f"logits_to_keep_{c}"]) if f"logits_to_keep_{c}" in batch else length)
        c += 1
    return tokens, attended, head


def distinct_tokens(examples) -> int:
    """Tokens of the queries with each prompt counted once."""
    return sum(len(e.prompt) + sum(len(r) for r in e.responses) for e in examples)


def report(label: str, tokens: int, seconds: float, flops: float, useful_flops: float, peak: float) -> None:
    print(f"{label:52s} {tokens:9,d} {seconds:10.3f} {flops / seconds / peak:9.1%} "
          f"{useful_flops / seconds / peak:9.1%}")


def header(unit: str) -> None:
    print(f"{'':52s} {'tokens':>9s} {unit:>10s} {'of peak':>9s} {'useful':>9s}")
