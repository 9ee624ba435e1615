"""Loading models and tokenizers the same way in every stage."""

from __future__ import annotations

from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rrhf.config_checks import model_source_problem
from rrhf.value_head_reward import load_value_head_reward_model


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """The torch dtype of config ``precision.dtype``: ``auto`` is bfloat16 on CUDA (when the GPU has it) and
    float32 elsewhere; ``float32``, ``bfloat16``, ``float16`` or a torch dtype are taken as they are."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"precision.dtype: {name!r} is not one of {['auto', *DTYPES]}")
    return DTYPES[name]


def check_model_source(path: str, kind: str = "model") -> None:
    """Raise FileNotFoundError naming ``path`` when it looks local but is missing or lacks what ``kind`` needs,
    or is a hub id not in the cache while HF_HUB_OFFLINE is set (:func:`rrhf.config_checks.model_source_problem`),
    before transformers takes it for a hub id or gives unrelated advice."""
    problem = model_source_problem(str(path), kind)
    if problem:
        raise FileNotFoundError(f"{'tokenizer' if kind == 'tokenizer' else 'model'} path {problem}")


def load_tokenizer(path: str, padding_side: str = "left", trust_remote_code: bool = False):
    """A tokenizer with a pad token (the EOS token when it has none) and the given padding side; raises naming
    ``path`` when it has neither a pad nor an EOS token (responses end in EOS, batches are padded)."""
    check_model_source(path, "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {path!r} has neither an EOS nor a pad token: responses end in EOS "
                             "and batches are padded; set eos_token in its tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def check_vocabulary(model, tokenizer, path: str) -> None:
    """Raise naming ``path`` when the tokenizer has more tokens than the model has embedding rows (a tokenizer
    from another model): its highest ids would index past the table (``IndexError: index out of range``)."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table has "
                         f"{rows} rows, so token ids {rows} to {len(tokenizer) - 1} have no embedding; the "
                         "folder's tokenizer belongs to another model")


def load_causal_lm(path: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"):
    """(model in eval mode on ``device`` with weights in ``dtype`` (:func:`resolve_dtype`), tokenizer padded on
    the left) from a hub id or folder; a bad path or a tokenizer that does not fit the model raises naming it."""
    check_model_source(path)
    tokenizer = load_tokenizer(path, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, device))
    check_vocabulary(model, tokenizer, path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def load_reward_model(source: str | dict[str, Any], device: str | torch.device = "cpu",
                      dtype: str | torch.dtype = "float32"):
    """(reward model in eval mode with weights in ``dtype``, tokenizer padded on the right).

    ``source`` is a path or hub id of a one-label ``AutoModelForSequenceClassification``, or a dict with
    ``path``, ``format`` (``transformers``, or ``value_head_checkpoint`` for a raw backbone + ``v_head``
    state dict such as Dahoas/gptj-rm-static's: :mod:`rrhf.value_head_reward`), ``backbone`` and
    ``trust_remote_code``. Either way ``model(input_ids=..., attention_mask=...).logits`` is (n, 1).
    """
    spec = {"path": source} if isinstance(source, str) else source
    path, trust_remote_code = spec["path"], spec.get("trust_remote_code", False)
    if spec.get("format", "transformers") == "value_head_checkpoint":
        check_model_source(path, "value_head_checkpoint")
        check_model_source(spec["backbone"], "backbone")
        model, tokenizer = load_value_head_reward_model(path, spec["backbone"], resolve_dtype(dtype, device),
                                                        trust_remote_code=trust_remote_code)
        return model.to(device).eval(), tokenizer
    check_model_source(path)
    tokenizer = load_tokenizer(path, padding_side="right", trust_remote_code=trust_remote_code)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=resolve_dtype(dtype, device),
                                                               trust_remote_code=trust_remote_code)
    check_vocabulary(model, tokenizer, path)
    if model.config.num_labels != 1:
        raise ValueError(f"reward model {path!r} has {model.config.num_labels} labels; a reward model has 1")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def model_positions(model) -> int | None:
    """The longest sequence the model's position embeddings allow (config n_positions or
    max_position_embeddings); None when its config names no limit."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def usable_length(model, requested: int) -> int:
    """``requested``, capped at :func:`model_positions` (if the model names a limit)."""
    limit = model_positions(model)
    return min(requested, limit) if limit else requested


def encode_pair(tokenizer, prompt: str, response: str, max_length: int, add_eos: bool = True) -> tuple[list[int], int]:
    """Token ids of prompt + response (+ EOS) within ``max_length``, and where the response starts.

    When too long, the response keeps up to ``max_length - min(len(prompt), max_length // 2)``
    tokens and the prompt is cut from the left, so the end of the prompt (the
    question being answered) is always kept.
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return cut_pair(prompt_ids, response_ids, max_length)


def cut_pair(prompt_ids: list[int], response_ids: list[int], max_length: int) -> tuple[list[int], int]:
    """:func:`encode_pair` on token ids: prompt + response within ``max_length`` (the prompt cut from the left),
    and where the response starts."""
    if len(prompt_ids) + len(response_ids) > max_length:
        response_ids = response_ids[: max_length - min(len(prompt_ids), max_length // 2)]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(response_ids)):]
    return prompt_ids + response_ids, len(prompt_ids)


def _span_positions(spans: list[tuple[int, int]], device) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(rows (M,), positions (M,), per-row sizes) of the tokens t in [max(start, 1), end) of every row's span."""
    rows, positions, sizes = [], [], []
    for row, (start, end) in enumerate(spans):
        start = max(int(start), 1)
        rows += [row] * (int(end) - start)
        positions += range(start, int(end))
        sizes.append(int(end) - start)
    return (torch.tensor(rows, dtype=torch.long, device=device),
            torch.tensor(positions, dtype=torch.long, device=device), sizes)


def _span_log_softmax(logits: torch.Tensor, input_ids: torch.Tensor,
                      spans: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(log_softmax (M, V) float32, target token ids (M,), per-row sizes) for the span tokens of every row."""
    rows_t, positions_t, sizes = _span_positions(spans, input_ids.device)
    return torch.log_softmax(logits[rows_t, positions_t - 1].float(), dim=-1), input_ids[rows_t, positions_t], sizes


def span_logprobs(logits: torch.Tensor, input_ids: torch.Tensor,
                  spans: list[tuple[int, int]]) -> list[torch.Tensor]:
    """log P(token t | tokens before t) for t in [max(start, 1), end) of each row's span.

    logits: (n, L, V); input_ids: (n, L); spans: one (start, end) per row.
    Returns n float32 tensors of shape (end - max(start, 1),). The log-softmax
    runs on those positions only, in one call, not on prompts or padding (at 7B
    scale a full-sequence float32 log-softmax costs gigabytes).
    """
    logprobs, targets, sizes = _span_log_softmax(logits, input_ids, spans)
    return list(logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).split(sizes))


def span_logprobs_and_entropies(logits: torch.Tensor, input_ids: torch.Tensor,
                                spans: list[tuple[int, int]]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """:func:`span_logprobs` and, from the same log-softmax, the entropy of the model's next-token
    distribution at each span token (same shapes)."""
    logprobs, targets, sizes = _span_log_softmax(logits, input_ids, spans)
    picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return list(picked.split(sizes)), list((-(logprobs.exp() * logprobs).sum(-1)).split(sizes))


def span_kl(logits: torch.Tensor, reference_logits: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """(n,) KL(pi || rho) of each row's span: sum over its tokens t of the exact KL between the two models'
    next-token distributions given the tokens before t (summed over the vocabulary).

    logits, reference_logits: (n, L, V) of pi and rho on the same inputs; spans: one (start, end) per row, as
    in :func:`span_logprobs`. Each term is >= 0, so the sum is 0 exactly when pi = rho on the span and
    positive otherwise.
    """
    rows_t, positions_t, sizes = _span_positions(spans, logits.device)
    log_pi = torch.log_softmax(logits[rows_t, positions_t - 1].float(), dim=-1)
    log_rho = torch.log_softmax(reference_logits[rows_t, positions_t - 1].float(), dim=-1)
    per_token = (log_pi.exp() * (log_pi - log_rho)).sum(-1).clamp_min(0.0)
    return torch.stack([part.sum() for part in per_token.split(sizes)])
