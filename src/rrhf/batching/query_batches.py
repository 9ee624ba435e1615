"""Batches of queries with K responses each, and the log-probabilities of every response token.

Two layouts of the same tokens (:func:`collate_queries`):
- separate: each response is its own sequence ``prompt + response`` (the prompt computed K times); the
  sequences of a batch are sorted by length and run in chunks of similar length;
- packed: each query is one row, its prompt and K responses, with a block attention mask
  (:mod:`rrhf.batching.prompt_sharing`), so its prompt is computed once; rows are chunked the same way.

Either way :func:`response_logprobs` gives the same (B, K, T) log-probabilities, to float tolerance.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass

import pandas as pd
import torch

from rrhf.batching.prompt_sharing import (
    cut_query,
    implementation_problem,
    pack_row,
    packed_inputs,
    pad_packed_rows,
    probe_groups,
    probe_tolerance,
    scored_positions,
    sharing_decision,
)
from rrhf.models.loading import launched_with_fsdp
from rrhf.models.token_spans import prompt_token_ids, response_token_ids, sequence_start
from rrhf.padding import pad_batch

log = logging.getLogger("rrhf")
# A chunk's longest row is at most this many times its shortest, so padding stays under ~1/6 of a chunk.
MAX_LENGTH_SPREAD = 1.2


@dataclass
class QueryExample:
    """One query: its prompt's token ids, K responses' token ids (EOS included) and their rewards, cut so
    that prompt + each response fits the training length (:func:`rrhf.batching.prompt_sharing.cut_query`)."""

    prompt: list[int]
    responses: list[list[int]]
    rewards: list[float]
    # The reference model's summed log-probability of each response
    # (rrhf.studies.preference_methods.reference_logprobs), for the
    # preference methods that compare with it; None for RRHF.
    references: list[float] | None = None

    @property
    def length(self) -> int:
        """The longest separate sequence, prompt + response."""
        return len(self.prompt) + max(len(r) for r in self.responses)

    @property
    def sequences(self) -> list[list[int]]:
        return [self.prompt + r for r in self.responses]


def encode_query(tokenizer, prompt: str, responses: list[str], max_length: int) -> tuple[list[int], list[list[int]]]:
    """(prompt ids, ids of each response + EOS), cut together to fit ``max_length`` (:func:`cut_query`); the prompt
    starts as the tokenizer starts a text (:func:`rrhf.models.token_spans.sequence_start`, e.g. LLaMA's BOS)."""
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    start = sequence_start(tokenizer)
    prompt_ids = prompt_token_ids(tokenizer, [prompt])[0]
    response_ids = [ids + eos for ids in response_token_ids(tokenizer, list(responses))]
    prompt_ids, response_ids = cut_query(prompt_ids, response_ids, max_length - len(start))
    return start + prompt_ids, response_ids


def build_examples(frame: pd.DataFrame, tokenizer, max_length: int) -> list[QueryExample]:
    """Group a scored set (prompt_id, prompt, response_index, response, reward) by prompt into
    :class:`QueryExample` objects, prompts in sorted prompt_id order; each response ends in EOS."""
    examples = []
    for _, group in frame.sort_values(["prompt_id", "response_index"]).groupby("prompt_id", sort=False):
        prompt, responses = encode_query(tokenizer, group["prompt"].iloc[0], list(group["response"]), max_length)
        examples.append(QueryExample(prompt, responses, [float(r) for r in group["reward"]]))
    return examples


def encode_queries(tokenizer, prompts: list[str], responses: list[str],
                   max_length: int) -> list[tuple[list[int], int]]:
    """(prompt + response ids, where the response starts) of each pair, the responses of one prompt text cut
    together as :func:`build_examples` cuts them; pairs in the input order."""
    by_prompt: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        by_prompt.setdefault(prompt, []).append(i)
    encoded: list[tuple[list[int], int]] = [([], 0)] * len(prompts)
    for prompt, rows in by_prompt.items():
        prompt_ids, response_ids = encode_query(tokenizer, prompt, [responses[i] for i in rows], max_length)
        for i, ids in zip(rows, response_ids):
            encoded[i] = (prompt_ids + ids, len(prompt_ids))
    return encoded


def keeps_logits(model) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (most transformers causal LMs), so the LM head can
    run on the scored positions only; a peft model is asked about the model it wraps."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(type(model).forward).parameters


def length_chunks(lengths: list[int], max_tokens: int, max_length_spread: float) -> list[list[int]]:
    """Indices grouped into chunks in ascending length: a chunk holds at most ``max_tokens`` padded tokens
    (rows x its longest) and its longest is at most ``max_length_spread`` times its shortest."""
    chunk: list[int] = []
    chunks: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        too_big = (len(chunk) + 1) * lengths[i] > max_tokens
        too_ragged = chunk and lengths[i] > max_length_spread * lengths[chunk[0]]
        if chunk and (too_big or too_ragged):
            chunks.append(chunk)
            chunk = []
        chunk.append(i)
    chunks.append(chunk)
    return chunks


def collate_queries(examples: list[QueryExample], pad_token_id: int, max_tokens_per_forward: int,
                    max_length_spread: float = MAX_LENGTH_SPREAD, packed: bool = False,
                    logits_on_scored_only: bool = False) -> dict[str, torch.Tensor]:
    """Tensors for a batch of B queries with up to K responses.

    Keys: ``rewards`` (B, K); ``reference_logps`` (B, K) where every example has ``references``; ``shape`` (3,) =
    (B, K, T), T the longest response; per chunk c of rows of
    similar length: ``input_ids_c`` (n_c, L_c) and ``attention_mask_c`` (separate) or ``position_ids_c`` and
    ``segments_c`` (packed), and the gather indices of the response tokens the chunk scores
    (:func:`scored_cells`: ``rows_c``, ``columns_c``, ``targets_c``, ``picks_c``, ``slots_c`` and, with
    ``logits_on_scored_only``, ``logits_to_keep_c``: the LM head then runs on the scored columns only).
    """
    width = max(len(e.responses) for e in examples)
    longest = max(len(r) for e in examples for r in e.responses)
    rewards = torch.zeros(len(examples), width)
    for b, example in enumerate(examples):
        rewards[b, : len(example.rewards)] = torch.tensor(example.rewards)
    rows, scored = [], []  # PackedRow of each row; per row, its scored tokens (predictor, target, output slot)
    for b, example in enumerate(examples):
        slots = [(b * width + k) * longest for k in range(len(example.responses))]
        groups = [(example.prompt, example.responses, slots)] if packed else [
            (example.prompt, [r], [s]) for r, s in zip(example.responses, slots)]
        for prompt, responses, group_slots in groups:
            row = pack_row(prompt, responses, prompt_last=packed)
            rows.append(row)
            scored.append([(predictor, target, group_slots[k] + n) for k, n, predictor, target
                           in scored_positions(row, [len(r) for r in responses])])
    batch = {"rewards": rewards, "shape": torch.tensor([len(examples), width, longest])}
    if all(example.references is not None for example in examples):
        batch["reference_logps"] = torch.zeros(len(examples), width)
        for b, example in enumerate(examples):
            batch["reference_logps"][b, : len(example.references)] = torch.tensor(example.references)
    for c, chunk in enumerate(length_chunks([len(r.tokens) for r in rows], max_tokens_per_forward,
                                            max_length_spread)):
        chunk_rows = [rows[i] for i in chunk]
        if packed:
            tensors = pad_packed_rows(chunk_rows, pad_token_id)
            batch[f"input_ids_{c}"], batch[f"position_ids_{c}"] = tensors["input_ids"], tensors["position_ids"]
            batch[f"segments_{c}"] = tensors["segments"]
        else:
            batch[f"input_ids_{c}"], batch[f"attention_mask_{c}"] = pad_batch([r.tokens for r in chunk_rows],
                                                                              pad_token_id)
        entries = [(n, p, rows[i].tokens[t], s) for n, i in enumerate(chunk) for p, t, s in scored[i]]
        batch.update({f"{key}_{c}": value for key, value in scored_cells(entries, logits_on_scored_only).items()})
    return batch


def scored_cells(entries: list[tuple[int, int, int, int]], logits_on_scored_only: bool) -> dict[str, torch.Tensor]:
    """The gather indices of one chunk from its M scored tokens ``entries`` (row, predictor column, target
    token, slot).

    A packed row predicts the first token of all its K responses from one cell, the prompt's last token,
    so cells are listed once: ``rows``, ``columns`` (U,) the distinct cells, ``targets`` (U, D) the tokens
    each predicts (D the most of any cell, padded with 0), ``picks`` (M,) each entry's place in the
    flattened (U, D), ``slots`` (M,) its place in the flattened (B, K, T) output; with
    ``logits_on_scored_only`` also ``logits_to_keep`` (the distinct columns, which ``columns`` then
    indexes). Distinct cells keep the backward pass free of repeated indices, whose accumulation on the CPU
    is not deterministic.
    """
    index: dict[tuple[int, int], int] = {}
    cell_targets: list[list[int]] = []
    picks = []  # (cell, k): the entry is the cell's k-th target
    for row, column, target, _ in entries:
        cell = index.setdefault((row, column), len(index))
        if cell == len(cell_targets):
            cell_targets.append([])
        picks.append((cell, len(cell_targets[cell])))
        cell_targets[cell].append(target)
    width = max((len(t) for t in cell_targets), default=1)
    columns = [column for _, column in index]
    targets = torch.tensor([t + [0] * (width - len(t)) for t in cell_targets], dtype=torch.long)
    out = {"rows": torch.tensor([row for row, _ in index], dtype=torch.long), "targets": targets.view(-1, width),
           "picks": torch.tensor([cell * width + k for cell, k in picks], dtype=torch.long),
           "slots": torch.tensor([slot for *_, slot in entries], dtype=torch.long)}
    if logits_on_scored_only:
        kept = sorted(set(columns))
        out["logits_to_keep"] = torch.tensor(kept, dtype=torch.long)
        where = {column: k for k, column in enumerate(kept)}
        columns = [where[column] for column in columns]
    out["columns"] = torch.tensor(columns, dtype=torch.long)
    return out


def chunk_inputs(model, batch: dict[str, torch.Tensor], c: int) -> dict[str, torch.Tensor]:
    """Keyword arguments of the model call on chunk ``c`` of a :func:`collate_queries` batch."""
    if f"segments_{c}" in batch:
        inputs = packed_inputs(model, {"input_ids": batch[f"input_ids_{c}"],
                                       "position_ids": batch[f"position_ids_{c}"],
                                       "segments": batch[f"segments_{c}"]})
    else:
        inputs = {"input_ids": batch[f"input_ids_{c}"], "attention_mask": batch[f"attention_mask_{c}"]}
    if f"logits_to_keep_{c}" in batch:
        inputs["logits_to_keep"] = batch[f"logits_to_keep_{c}"]
    return inputs


def response_logprobs(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token_logprobs, response_mask), each (B, K, T): log P (float32) of each response token given the prompt
    and the response before it, and true where there is a token. One model call per chunk; the log-softmax
    runs on the scored positions only."""
    batch_size, width, longest = batch["shape"].tolist()
    values, places = [], []
    c = 0
    while f"input_ids_{c}" in batch:
        logits = model(**chunk_inputs(model, batch, c)).logits
        cells = torch.log_softmax(logits[batch[f"rows_{c}"], batch[f"columns_{c}"]].float(), dim=-1)
        values.append(cells.gather(-1, batch[f"targets_{c}"]).flatten().index_select(0, batch[f"picks_{c}"]))
        places.append(batch[f"slots_{c}"])
        c += 1
    places_t = torch.cat(places)
    total = batch_size * width * longest
    out = torch.zeros(total, device=places_t.device).index_put((places_t,), torch.cat(values))
    mask = torch.zeros(total, dtype=torch.bool, device=places_t.device).index_fill(0, places_t, True)
    return out.view(batch_size, width, longest), mask.view(batch_size, width, longest)


@torch.no_grad()
def causal_lm_sharing_problem(model) -> str | None:
    """Why ``model`` (a causal LM) cannot score packed rows as it scores separate sequences, or None.

    Its attention implementation must take a 4D mask; then a probe of two uneven queries is scored both
    ways and must agree to rounding (a model that ignores position ids or the mask does not)."""
    problem = implementation_problem(model)
    if problem:
        return problem
    vocabulary = model.get_input_embeddings().num_embeddings
    examples = [QueryExample(prompt, responses, [0.0] * len(responses))
                for prompt, responses in probe_groups(vocabulary)]
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    try:
        results = []
        for packed in (False, True):
            batch = collate_queries(examples, 0, 1 << 20, packed=packed)
            results.append(response_logprobs(model, {k: v.to(device) for k, v in batch.items()}))
    finally:
        model.train(training)
    (separate, mask), (shared, shared_mask) = results
    gap = float((separate - shared).abs().max())
    if not torch.equal(mask, shared_mask) or gap > probe_tolerance(model):
        return (f"its log-probabilities of packed rows differ from separate sequences by {gap:.3g} on a probe "
                "(it ignores position ids or the 4D attention mask)")
    return None


def query_collator(model, tokenizer, max_tokens_per_forward: int, prompt_sharing: str, key: str, what: str):
    """``collate(examples)`` for ``model``'s training batches: packed rows when ``prompt_sharing`` (config
    ``key``) is ``packed``, or ``auto`` and the model can share prompts (:func:`causal_lm_sharing_problem`);
    logits only where a token is scored when the model takes ``logits_to_keep``. Logs which it is.

    In training of several processes the first one runs the probe and every process packs as it decided: under
    FSDP's memory-efficient loading only the first process has the weights before training starts. Under FSDP
    each batch runs in one forward pass: every forward pass of a sharded model gathers weights from all
    processes, so all must run as many as each other, whatever the lengths of their own batches."""
    packed = sharing_decision(prompt_sharing, key, lambda: decided_by_first_process(
        lambda: causal_lm_sharing_problem(model)), what)
    keep = keeps_logits(model)
    spread = MAX_LENGTH_SPREAD
    if launched_with_fsdp():
        log.info("%s: one forward pass per batch under FSDP (rrhf.max_tokens_per_forward %d does not apply)", what,
                 max_tokens_per_forward)
        max_tokens_per_forward, spread = 1 << 62, float("inf")
    return lambda examples: collate_queries(examples, tokenizer.pad_token_id, max_tokens_per_forward, spread,
                                            packed=packed, logits_on_scored_only=keep)


def decided_by_first_process(question):
    """``question()`` asked in the first process only, its (picklable) answer given to every process; asked here
    when there is one process. Every process must call this at the same point."""
    import torch.distributed as distributed

    if not (distributed.is_available() and distributed.is_initialized()) or distributed.get_world_size() == 1:
        return question()
    answer = [question() if distributed.get_rank() == 0 else None]
    distributed.broadcast_object_list(answer, src=0)
    return answer[0]
