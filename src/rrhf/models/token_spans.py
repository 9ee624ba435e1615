"""Token ids of (prompt, response) pairs and the log-probabilities, entropies and KL of a span of them.

Every sequence starts the way the model's own tokenizer starts a text (:func:`sequence_start`: LLaMA's BOS, nothing
for GPT-2), however its prompt is cut: texts are tokenized without special tokens, cut, and the start is put in
front. The response ends with EOS where the caller asks for it.
"""

from __future__ import annotations

import weakref

import torch

from rrhf.models.prompt_formats import model_prompts, model_responses

_STARTS: "weakref.WeakKeyDictionary[object, tuple[int, ...]]" = weakref.WeakKeyDictionary()
_PROBE = "Human: hello"


def sequence_start(tokenizer) -> list[int]:
    """The special tokens ``tokenizer`` puts in front of a text it encodes on its own (``add_special_tokens``):
    ``[bos]`` for LLaMA's, ``[cls]`` for an encoder's, ``[]`` for GPT-2's and the project's BPE. Tokens it adds
    after the text (an encoder's ``[sep]``, an EOS) are not part of it. Found once per tokenizer by encoding a
    probe text with and without them."""
    try:
        return list(_STARTS[tokenizer])
    except (KeyError, TypeError):
        pass
    plain = tokenizer(_PROBE, add_special_tokens=False)["input_ids"]
    full = tokenizer(_PROBE, add_special_tokens=True)["input_ids"]
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    if start is None:
        raise ValueError(f"{type(tokenizer).__name__}: encoding a text with special tokens does not keep its own "
                         f"tokens ({plain} inside {full}); cannot tell which special tokens it puts first")
    found = tuple(full[:start])
    try:
        _STARTS[tokenizer] = found
    except TypeError:  # not weakly referable: found again next time
        pass
    return list(found)


def prompt_token_ids(tokenizer, prompts: list[str]) -> list[list[int]]:
    """Token ids of each prompt as the model reads it (:mod:`rrhf.models.prompt_formats`: raw HH text or its chat
    template), no special tokens added (:func:`sequence_start` is put in front where the sequence is made)."""
    return tokenizer(model_prompts(tokenizer, list(prompts)), add_special_tokens=False)["input_ids"]


def response_token_ids(tokenizer, responses: list[str]) -> list[list[int]]:
    """Token ids of each response as it follows the prompt in the model's format, no EOS added."""
    return tokenizer(model_responses(tokenizer, list(responses)), add_special_tokens=False)["input_ids"]


def start_and_cut(tokenizer, prompt_ids: list[int], budget: int | None) -> list[int]:
    """:func:`sequence_start` + the last tokens of ``prompt_ids`` that fit ``budget`` tokens in all (None: all of
    them): a prompt cut from the left keeps the end of the question being answered and its start token."""
    start = sequence_start(tokenizer)
    if budget is None:
        return start + prompt_ids
    room = max(0, budget - len(start))
    return start + prompt_ids[max(0, len(prompt_ids) - room):] if room else list(start)


def encode_pair(tokenizer, prompt: str, response: str, max_length: int, add_eos: bool = True) -> tuple[list[int], int]:
    """Token ids of [start] + prompt + response (+ EOS) within ``max_length``, and where the response starts;
    prompt and response as the model reads them (:func:`prompt_token_ids`).

    [start] is :func:`sequence_start`. When too long, the response keeps up to
    ``max_length - min(len(prompt), max_length // 2)`` tokens and the prompt is cut from the left (after its start
    token), so the end of the prompt (the question being answered) is always kept.
    """
    prompt_ids, response_ids = prompt_token_ids(tokenizer, [prompt])[0], response_token_ids(tokenizer, [response])[0]
    if add_eos and tokenizer.eos_token_id is not None:
        response_ids = response_ids + [tokenizer.eos_token_id]
    return cut_pair(prompt_ids, response_ids, max_length, sequence_start(tokenizer))


def cut_pair(prompt_ids: list[int], response_ids: list[int], max_length: int,
             start: list[int] | None = None) -> tuple[list[int], int]:
    """:func:`encode_pair` on token ids: ``start`` + prompt + response within ``max_length`` (the prompt cut from
    the left, after ``start``), and where the response starts."""
    start = list(start or [])
    room = max_length - len(start)
    if len(prompt_ids) + len(response_ids) > room:
        response_ids = response_ids[: room - min(len(prompt_ids), room // 2)]
        prompt_ids = prompt_ids[len(prompt_ids) - (room - len(response_ids)):]
    return start + prompt_ids + response_ids, len(start) + len(prompt_ids)



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
    per_token = next_token_kl(logits[rows_t, positions_t - 1], reference_logits[rows_t, positions_t - 1])
    return torch.stack([part.sum() for part in per_token.split(sizes)])



def next_token_kl(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """(M,) float32 exact KL(pi || rho) = sum_v pi(v) (log pi(v) - log rho(v)) of M pairs of next-token
    distributions, from their logits (M, V) (any float dtype; the log-softmax runs in float32). Each value is
    clamped at 0, so float rounding never makes a KL negative."""
    if logits.shape != reference_logits.shape:
        raise ValueError(f"the two models' logits differ in shape: {tuple(logits.shape)} and "
                         f"{tuple(reference_logits.shape)} (do they share a vocabulary?)")
    log_pi = torch.log_softmax(logits.float(), dim=-1)
    log_rho = torch.log_softmax(reference_logits.float(), dim=-1)
    return (log_pi.exp() * (log_pi - log_rho)).sum(-1).clamp_min(0.0)
