"""Reward scoring with each prompt computed once: the responses of one prompt packed into one row.

A decoder reward model reads one hidden state per sequence (the EOS after the response, or the last token
that is not padding) and applies its head there. In a packed row (:mod:`rrhf.batching.prompt_sharing`) each
response's tokens have the hidden states they have in the separate sequence prompt + response, so running
the backbone once on the row and applying the head at each response's reading position gives every
response's reward. Supported: transformers ``*ForSequenceClassification`` decoders (backbone
``base_model``, head ``score``, read at the last token that is not the pad token) and
:class:`rrhf.models.value_head_reward.ValueHeadRewardModel` (``transformer`` + ``v_head``, read at the first
EOS). Encoders read a [CLS] token that sees the whole input, so they cannot share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from rrhf.batching.prompt_sharing import (
    fill_batches,
    group_by_prompt,
    implementation_problem,
    pack_row,
    packed_inputs,
    pad_packed_rows,
    probe_groups,
    probe_tolerance,
)
from rrhf.models.value_head_reward import ValueHeadRewardModel
from rrhf.padding import pad_batch


@dataclass
class RewardReader:
    """A reward model taken apart: ``backbone(input_ids, position_ids, attention_mask)`` gives hidden states,
    ``head`` maps one (H,) state to the reward, ``position(ids)`` is where the model reads a sequence."""

    backbone: nn.Module
    head: nn.Module
    position: Callable[[list[int]], int]


def last_non_pad(pad_token_id: int | None) -> Callable[[list[int]], int]:
    """transformers' sequence classifiers' reading position: the last token that is not ``pad_token_id``
    (0 when all are), or the last token when the model has no pad token."""
    def position(ids: list[int]) -> int:
        if pad_token_id is None:
            return len(ids) - 1
        return max((i for i, token in enumerate(ids) if token != pad_token_id), default=0)
    return position


def first_eos(eos_token_id: int) -> Callable[[list[int]], int]:
    """:func:`rrhf.models.value_head_reward.reward_positions` of one unpadded sequence: its first EOS, else its
    last token."""
    def position(ids: list[int]) -> int:
        return ids.index(eos_token_id) if eos_token_id in ids else len(ids) - 1
    return position


def reward_reader(model) -> RewardReader | None:
    """``model`` as a :class:`RewardReader`, or None when it is not a kind that can share prompts."""
    if isinstance(model, ValueHeadRewardModel):
        return RewardReader(model.transformer, model.v_head, first_eos(model.eos_token_id))
    head, backbone = getattr(model, "score", None), getattr(model, "base_model", None)
    if isinstance(head, nn.Linear) and backbone is not None and backbone is not model:
        return RewardReader(backbone, head, last_non_pad(model.config.pad_token_id))
    return None


def packed_scores(model, reader: RewardReader, encoded: list[tuple[list[int], int]], pad_token_id: int,
                  responses_per_forward: int, progress: Callable = iter) -> list[float]:
    """Reward of each encoded sequence (ids, where its response starts), each prompt run once.

    Rows (one prompt with its responses) are sorted by length and run in batches of at most
    ``responses_per_forward`` responses (at least one row). Rewards come back in the input order."""
    rows, reads = [], []
    for prompt, members in group_by_prompt(encoded):
        row = pack_row(prompt, [encoded[i][0][len(prompt):] for i in members])
        rows.append(row)
        reads.append([(i, row.index(reader.position(encoded[i][0]), k)) for k, i in enumerate(members)])
    order = sorted(range(len(rows)), key=lambda r: len(rows[r].tokens))
    batches = [[order[n] for n in batch] for batch in fill_batches([len(reads[r]) for r in order],
                                                                     responses_per_forward)]
    device = next(model.parameters()).device
    rewards = [0.0] * len(encoded)
    for batch in progress(batches):
        tensors = {k: v.to(device) for k, v in pad_packed_rows([rows[r] for r in batch], pad_token_id).items()}
        hidden = reader.backbone(**packed_inputs(model, tensors)).last_hidden_state
        entries = [(n, i, column) for n, r in enumerate(batch) for i, column in reads[r]]
        row_index = torch.tensor([n for n, _, _ in entries], device=device)
        columns = torch.tensor([column for _, _, column in entries], device=device)
        values = reader.head(hidden[row_index, columns])[:, 0].float().tolist()
        for (_, i, _), value in zip(entries, values):
            rewards[i] = value
    return rewards


@torch.no_grad()
def reward_sharing_problem(model, tokenizer) -> str | None:
    """Why ``model`` cannot score packed rows as it scores separate sequences, or None (checked on a probe of
    two uneven prompts, each response ending in EOS)."""
    if tokenizer.cls_token_id is not None:
        return "an encoder reads its [CLS] token, which sees the whole input"
    reader = reward_reader(model)
    if reader is None:
        return f"{type(model).__name__} is not a decoder sequence classifier or a value-head reward model"
    problem = implementation_problem(model)
    if problem:
        return problem
    special = {tokenizer.pad_token_id, tokenizer.eos_token_id}
    vocabulary = [t for t in range(model.config.vocab_size) if t not in special]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    encoded = [([vocabulary[t % len(vocabulary)] for t in prompt + response] + eos, len(prompt))
               for prompt, responses in probe_groups(len(vocabulary)) for response in responses]
    device = next(model.parameters()).device
    input_ids, attention_mask = (t.to(device) for t in pad_batch([ids for ids, _ in encoded], tokenizer.pad_token_id))
    separate = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0].float()
    shared = torch.tensor(packed_scores(model, reader, encoded, tokenizer.pad_token_id, 1 << 20), device=device)
    gap = float((separate - shared).abs().max())
    if gap > probe_tolerance(model):
        return (f"its rewards of packed rows differ from separate sequences by {gap:.3g} on a probe "
                "(it ignores position ids or the 4D attention mask)")
    return None
