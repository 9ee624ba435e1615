"""The workload of benchmarks/rrhf_step.py and benchmarks/score_responses.py: real HH queries with K replies.

Each query is an HH prompt with K replies: its own chosen and rejected reply and the chosen and rejected
replies of the next queries, tokenized by a byte-level BPE tokenizer trained on the file's transcripts and
cut to ``max_length`` tokens per prompt + reply. Without an HH file the project's synthetic HH data
stands in. The model is a randomly initialised LLaMA- or GPT-2-style one of the given shape, or with
``--model FOLDER`` a transformers model folder (e.g. one the import stage wrote) with its own tokenizer, whose
queries are then encoded as that model reads them (its prompt format, its start token). Also: the matmul peak
of the device, measured in the same run, and the FLOPs a forward pass of a model of the given shape takes
(grouped-query attention, SwiGLU's width and a tied head counted as the model's config has them).
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
    """The command-line options the benchmarks share: data, K, cut, model (shape or folder), device."""
    parser.add_argument("--hh", help="an Anthropic HH jsonl(.gz) file")
    parser.add_argument("--queries", type=int, default=queries)
    parser.add_argument("--responses", type=int, default=6, help="replies per query (K)")
    parser.add_argument("--max-length", type=int, default=192, help="tokens of prompt + reply")
    add_model_arguments(parser)


def add_model_arguments(parser) -> None:
    """The options that choose the model (:func:`workload_model`) and the device."""
    parser.add_argument("--model", metavar="FOLDER",
                        help="a transformers model folder (weights, config, tokenizer), in float32 (or --dtype), "
                             "instead of the random model; --layers, --hidden, --heads, --family and the BPE "
                             "tokenizer then do not apply")
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


GATED_FAMILIES = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "olmo", "olmo2", "phi3",
                  "granite", "smollm3"}


@dataclass
class Shape:
    """A decoder's sizes, for FLOP counts. ``kv_heads`` below ``heads`` is grouped-query attention (the key and
    value projections are that much narrower; the score and value products still run for every query head);
    ``intermediate`` is the MLP's width, ``gated`` a SwiGLU MLP (three matrices, LLaMA's) rather than two
    (GPT-2's). Left out: ``kv_heads = heads``, ``head_dim = hidden / heads``, and an MLP of 12 h^2 weights in all
    with attention (8/3 h SwiGLU, 4 h GPT-2)."""

    layers: int
    hidden: int
    heads: int
    vocabulary: int
    kv_heads: int | None = None
    head_dim: int | None = None
    intermediate: int | None = None
    gated: bool = True
    tied: bool = True

    @classmethod
    def of_config(cls, config) -> "Shape":
        """The sizes of a transformers config: GPT-2's (``n_layer``, ``n_embd``, ``n_inner``) or LLaMA-like ones
        (``num_hidden_layers``, ``hidden_size``, ``intermediate_size``, ``num_key_value_heads``, ``head_dim``)."""
        if hasattr(config, "n_embd"):
            return cls(config.n_layer, config.n_embd, config.n_head, config.vocab_size,
                       intermediate=config.n_inner or 4 * config.n_embd, gated=False,
                       tied=bool(getattr(config, "tie_word_embeddings", True)))
        heads = config.num_attention_heads
        gated = config.model_type in GATED_FAMILIES or getattr(config, "hidden_act", "") in ("silu", "swish")
        return cls(config.num_hidden_layers, config.hidden_size, heads, config.vocab_size,
                   kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                   head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
                   intermediate=config.intermediate_size, gated=gated,
                   tied=bool(getattr(config, "tie_word_embeddings", False)))

    @property
    def attention_width(self) -> int:
        """Width of the query heads together (heads x head_dim): what the score and value products run over."""
        return self.heads * (self.head_dim or self.hidden // self.heads)

    @property
    def block_parameters(self) -> int:
        """Weights of one block's matmuls: query and output projections h x (heads x head_dim) each, key and value
        projections h x (kv_heads x head_dim) each, and the MLP's two or three h x intermediate matrices."""
        head_dim = self.head_dim or self.hidden // self.heads
        attention = 2 * self.hidden * head_dim * (self.heads + (self.kv_heads or self.heads))
        if self.intermediate is None:
            return attention + 8 * self.hidden * self.hidden
        return attention + (3 if self.gated else 2) * self.hidden * self.intermediate

    def forward_flops(self, tokens: int, attended: int, head_tokens: int) -> float:
        """Multiply-adds x 2 of a forward pass over ``tokens`` tokens whose attention covers ``attended``
        (query, key) pairs in all (both score and value products, every query head), with the LM head
        (``vocabulary`` x ``hidden``, whether tied to the embeddings or not) on ``head_tokens``. The embedding
        lookup, norms, rotary positions and softmax are not matmuls and are not counted."""
        return 2.0 * (self.layers * (tokens * self.block_parameters + 2 * attended * self.attention_width)
                      + head_tokens * self.hidden * self.vocabulary)

    def describe(self) -> str:
        """The sizes in words, for the scripts' model line."""
        kv = f" ({self.kv_heads} key/value)" if self.kv_heads and self.kv_heads != self.heads else ""
        mlp = f", {'SwiGLU' if self.gated else 'MLP'} {self.intermediate}" if self.intermediate else ""
        return (f"{self.layers} x {self.hidden}, {self.heads} heads{kv}{mlp}, vocabulary {self.vocabulary:,}"
                f"{' (tied)' if self.tied else ''}")


def matmul_weights(model) -> int:
    """Weights of ``model``'s matmuls outside its embeddings and output head (LM head or score): what
    ``Shape.block_parameters`` x layers counts."""
    skip = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    for name in ("lm_head", "score"):
        head = getattr(model, name, None)
        if head is not None:
            skip |= {id(p) for p in head.parameters()}
    return sum(p.numel() for p in model.parameters() if p.dim() == 2 and id(p) not in skip)


def checked_shape(model) -> Shape:
    """``Shape.of_config(model.config)``, checked against the model's own matmul weights (so the FLOP counts
    follow the model, grouped-query attention and MLP width included); raises when they differ."""
    shape = Shape.of_config(model.config)
    counted, held = shape.layers * shape.block_parameters, matmul_weights(model)
    if counted != held:
        raise ValueError(f"the FLOP count's block weights ({counted:,}: {shape.describe()}) differ from the "
                         f"model's matmul weights ({held:,}); {type(model).__name__} is a shape Shape does not know")
    return shape


def load_model(kind: str, folder: str, dtype: torch.dtype, device: str):
    """(model, tokenizer) from a transformers model folder: its causal LM (``lm``, tokenizer padded on the left)
    or a one-label sequence classifier on its backbone (``reward``: a new, seeded score head; tokenizer padded on
    the right), weights in ``dtype``, tokenizer by rrhf.models.loading.load_tokenizer."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from rrhf.models.loading import check_vocabulary, load_tokenizer

    tokenizer = load_tokenizer(folder, padding_side="left" if kind == "lm" else "right")
    torch.manual_seed(0)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # not "score.weight newly initialized": it is meant to be
    transformers.logging.disable_progress_bar()
    try:
        if kind == "lm":
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype, num_labels=1)
    finally:
        transformers.logging.set_verbosity(verbosity)
    check_vocabulary(model, tokenizer, folder)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device), tokenizer


def workload_model(args, kind: str, frame, dtype: torch.dtype, vocabulary: int | None = None):
    """(model, tokenizer, shape, description) of the command line: ``--model FOLDER`` (:func:`load_model`), else
    a random ``--family`` model of ``--layers`` x ``--hidden`` with the BPE tokenizer trained on ``frame``
    (LM head of ``vocabulary`` rows, default the tokenizer's). The shape is read from the model's config."""
    if args.model:
        model, tokenizer = load_model(kind, args.model, dtype, args.device)
        name = f"{args.model}: {model.config.model_type} {type(model).__name__}"
    else:
        tokenizer = bpe_tokenizer(frame, args.tokenizer_vocabulary)
        shape = Shape(args.layers, args.hidden, args.heads, vocabulary or len(tokenizer))
        model = new_model(kind, shape, args.family, dtype, args.device)
        model.config.pad_token_id = tokenizer.pad_token_id
        name = f"random {args.family}"
    shape = checked_shape(model)
    parameters = sum(p.numel() for p in model.parameters())
    return model, tokenizer, shape, f"{name} {shape.describe()}, {parameters / 1e6:.1f}M parameters"


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
