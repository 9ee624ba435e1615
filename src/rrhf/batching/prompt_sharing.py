"""Each prompt computed once: a prompt and its K responses packed into one sequence.

A query's prompt and responses are laid out in one row (``response_1, ..., response_K, prompt``: see
:class:`PackedRow`). A block attention mask lets each prompt token see the prompt before it, and each
response token see the whole prompt and its own response up to itself, never another response. Position
ids restart at the prompt's length for every response. So every response token gets the same hidden
states as in the separate sequence ``prompt + response_k``, while the prompt's tokens are computed once
instead of K times: in the forward pass and, since the prompt's activations are shared, in the backward
pass too (the gradient that reaches them is the sum over the K responses, as with separate sequences).

Why packing and not a key/value cache expanded to the K responses:
- One ordinary forward call of the whole model, as for any batch. FSDP gathers its shards once per
  micro-batch and DDP's gradient hooks fire once. A cache needs two calls (prompt, then responses) with
  the graph kept between them.
- Gradient checkpointing works as usual: transformers turns ``use_cache`` off when it is on in training,
  which rules the cache out.
- bf16 and fp16 need nothing special: the mask is boolean for ``sdpa``, and an additive mask in the
  model's own dtype for ``eager``, as transformers builds its own.

What it needs from a model: an attention implementation that takes a 4D mask (``sdpa`` or ``eager``;
flash-attention kernels take none), position ids that are honoured (rotary or learned absolute
positions; ALiBi models build their bias from a 2D mask). :func:`rrhf.batching.query_batches.causal_lm_sharing_problem`
and :func:`rrhf.scoring.packed_rewards.reward_sharing_problem` check both with a tiny probe against separate
sequences, so a model that does not allow it falls back to separate sequences
(config ``rrhf.prompt_sharing`` / ``scoring.prompt_sharing``: ``auto``) or stops with the reason
(``packed``).

Attention itself still runs on the dense (L x L) mask: the masked blocks between responses cost FLOPs in
attention (not in the linear layers, which are most of the compute at 192 tokens).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

log = logging.getLogger("rrhf")
SHARING_MODES = ("auto", "packed", "separate")
MASK_IMPLEMENTATIONS = ("sdpa", "eager")
PAD_SEGMENT = -1


def cut_query(prompt: list[int], responses: list[list[int]], max_length: int) -> tuple[list[int], list[list[int]]]:
    """One cut for a query and all its responses, so they share one prompt within ``max_length`` each.

    Every response keeps up to ``max_length - min(len(prompt), max_length // 2)`` tokens, and the prompt
    keeps its last ``max_length - longest kept response`` tokens. With one response this is exactly
    :func:`rrhf.models.token_spans.cut_pair`; a query that fits is not cut at all.
    """
    keep = max_length - min(len(prompt), max_length // 2)
    if any(len(prompt) + len(r) > max_length for r in responses):
        responses = [r[:keep] for r in responses]
    room = max_length - max((len(r) for r in responses), default=0)
    return prompt[max(0, len(prompt) - room):], responses


def group_by_prompt(encoded: list[tuple[list[int], int]]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, indices of its sequences) of each distinct prompt, in first-seen order, from
    ``encoded`` (sequence ids, where the response starts)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, (ids, start) in enumerate(encoded):
        groups.setdefault(tuple(ids[:start]), []).append(i)
    return [(list(prompt), members) for prompt, members in groups.items()]


def fill_batches(sizes: list[int], limit: int) -> list[list[int]]:
    """Consecutive indices of ``sizes`` in batches whose sizes sum to at most ``limit`` (a larger item alone)."""
    batches: list[list[int]] = []
    total = 0
    for i, size in enumerate(sizes):
        if not batches or total + size > limit:
            batches.append([])
            total = 0
        batches[-1].append(i)
        total += size
    return batches


@dataclass
class PackedRow:
    """One prompt and its responses laid out in one row (no padding): the K responses first, then the prompt.

    ``tokens``, ``positions`` and ``segments`` have one entry per token: the token id, its position id
    (0.. on the prompt, from the prompt's length on in each response), and 0 on the prompt or k + 1 on
    response k. ``offsets[k]`` is where response k starts in the row, ``prompt_offset`` where the prompt
    does, ``prompt_length`` how long it is. Attention follows the position ids, not the order in the row
    (:func:`block_attention_mask`), so putting the prompt last changes nothing but where the scored
    positions are: the responses' tokens start every row, so an LM head restricted to the scored columns of
    a chunk's rows skips the prompts.
    """

    tokens: list[int]
    positions: list[int]
    segments: list[int]
    offsets: list[int]
    prompt_offset: int
    prompt_length: int

    def index(self, position: int, response: int) -> int:
        """Where token ``position`` of the separate sequence prompt + response is in the row."""
        if position < self.prompt_length:
            return self.prompt_offset + position
        return self.offsets[response] + position - self.prompt_length


def pack_row(prompt: list[int], responses: list[list[int]], prompt_last: bool = True) -> PackedRow:
    """Lay out each of ``responses``, then ``prompt`` (or, with ``prompt_last`` false, the prompt first: the
    plain causal order, which a model call without position ids and block mask needs); each response's
    positions start after the prompt."""
    tokens: list[int] = [] if prompt_last else list(prompt)
    positions: list[int] = [] if prompt_last else list(range(len(prompt)))
    segments: list[int] = [] if prompt_last else [0] * len(prompt)
    offsets = []
    for k, response in enumerate(responses):
        offsets.append(len(tokens))
        tokens += response
        positions += range(len(prompt), len(prompt) + len(response))
        segments += [k + 1] * len(response)
    if not prompt_last:
        return PackedRow(tokens, positions, segments, offsets, 0, len(prompt))
    return PackedRow(tokens + list(prompt), positions + list(range(len(prompt))), segments + [0] * len(prompt),
                     offsets, len(tokens), len(prompt))


def scored_positions(row: PackedRow, lengths: list[int]) -> list[tuple[int, int, int, int]]:
    """(k, n, predictor, target) for every scored token of each response: the n-th scored token of response
    k (of length ``lengths[k]``) is token t >= 1 of the separate sequence prompt + response_k; ``predictor``
    is where in the row the logits that predict it are, ``target`` where the token is. Token 0 of a response
    that follows an empty prompt has no predictor and is left out, as :func:`rrhf.models.token_spans.span_logprobs`
    leaves out position 0."""
    start = row.prompt_length
    return [(k, n, row.index(t - 1, k), row.index(t, k)) for k, length in enumerate(lengths)
            for n, t in enumerate(range(max(start, 1), start + length))]


def pad_packed_rows(rows: list[PackedRow], pad_token_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``position_ids`` and ``segments``, each (n, L): the rows right-padded to the longest;
    padding has segment -1."""
    width = max(len(r.tokens) for r in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    segments = torch.full((len(rows), width), PAD_SEGMENT, dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.tokens)
        input_ids[i, :n] = torch.tensor(row.tokens)
        position_ids[i, :n] = torch.tensor(row.positions)
        segments[i, :n] = torch.tensor(row.segments)
    return {"input_ids": input_ids, "position_ids": position_ids, "segments": segments}


def block_attention_mask(segments: torch.Tensor, positions: torch.Tensor, implementation: str = "sdpa",
                         dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(n, 1, L, L) mask of packed rows from their ``segments`` and ``positions`` (n, L).

    Query i sees key j when neither is padding, j is on the prompt (segment 0) or in i's own segment, and
    j's position is not after i's: causal by position, whatever the order in the row. A padding token
    sees only itself, so no row of the mask is empty. ``sdpa``: boolean, true where attended; ``eager``:
    additive, 0 or the lowest value of ``dtype``.
    """
    length = segments.shape[-1]
    query, key = segments.unsqueeze(-1), segments.unsqueeze(-2)
    causal = positions.unsqueeze(-2) <= positions.unsqueeze(-1)
    seen = causal & (query != PAD_SEGMENT) & (key != PAD_SEGMENT) & ((key == 0) | (key == query))
    seen = seen | torch.eye(length, dtype=torch.bool, device=segments.device)
    seen = seen.unsqueeze(1)
    if implementation == "eager":
        return torch.zeros(seen.shape, dtype=dtype, device=segments.device).masked_fill(~seen, torch.finfo(dtype).min)
    return seen


def attention_implementation(model) -> str | None:
    """The attention implementation a transformers model runs, also inside a DDP or FSDP wrapper (``module``)
    or peft's (which has the model's ``config``)."""
    while not hasattr(model, "config") and hasattr(model, "module"):
        model = model.module
    return getattr(getattr(model, "config", None), "_attn_implementation", None)


def model_dtype(model) -> torch.dtype:
    return next(model.parameters()).dtype


def packed_inputs(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keyword arguments of a model call on padded packed rows (:func:`pad_packed_rows`'s keys)."""
    return {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"],
            "attention_mask": block_attention_mask(batch["segments"], batch["position_ids"],
                                                   attention_implementation(model), model_dtype(model))}


def implementation_problem(model) -> str | None:
    """Why ``model``'s attention implementation cannot take a block mask, or None."""
    implementation = attention_implementation(model)
    if implementation not in MASK_IMPLEMENTATIONS:
        return (f"its attention implementation {implementation!r} takes no 4D attention mask "
                f"(packing needs one of {list(MASK_IMPLEMENTATIONS)})")
    return None


def probe_groups(vocabulary: int) -> list[tuple[list[int], list[list[int]]]]:
    """Two tiny queries with uneven prompts and responses (token ids below ``vocabulary``) for probes."""
    ids = [(7 * i + 3) % vocabulary for i in range(16)]
    return [(ids[:3], [ids[3:6], ids[6:7], ids[7:11]]), (ids[11:12], [ids[12:14], ids[14:16]])]


def probe_tolerance(model) -> float:
    """How far a probe's packed and separate results may differ: float rounding in the model's dtype."""
    return 1e-3 if next(model.parameters()).dtype == torch.float32 else 5e-2


def sharing_decision(mode: str, key: str, problem, what: str) -> bool:
    """Whether to pack, for config ``key`` = ``mode``; ``problem()`` says why the model cannot (or None).

    ``separate`` never packs; ``auto`` packs unless there is a problem, and logs which it does; ``packed``
    raises naming ``key`` and the problem."""
    if mode not in SHARING_MODES:
        raise ValueError(f"{key}: {mode!r} is not one of {list(SHARING_MODES)}")
    if mode == "separate":
        log.info("%s: each response runs as its own sequence with its prompt (%s: separate)", what, key)
        return False
    reason = problem()
    if reason is None:
        log.info("%s: each prompt is computed once, packed with its responses (%s: %s)", what, key, mode)
        return True
    if mode == "packed":
        raise ValueError(f"{key}: packed, but the model cannot share prompts: {reason}; set {key}: auto or separate")
    log.info("%s: separate sequences, as the model cannot share prompts: %s (%s: auto)", what, reason, key)
    return False
