"""Padding sequences into batch tensors: shared by training, sampling, scoring and evaluation."""

from __future__ import annotations

from typing import Sequence

import torch


def pad_right(sequences: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """(N, max_len) LongTensor of ``sequences`` padded on the right with ``value``."""
    width = max(len(s) for s in sequences)
    out = torch.full((len(sequences), width), value, dtype=torch.long)
    for row, seq in enumerate(sequences):
        out[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    return out



def pad_batch(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), each (N, max_len): ``sequences`` right-padded, and 1 on their real tokens."""
    return pad_right(sequences, pad_token_id), pad_right([[1] * len(s) for s in sequences], 0)


def pad_values(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) float tensor of B 1-d tensors right-padded with 0, and its (B, T) bool mask of real entries."""
    width = max(len(r) for r in rows)
    out = torch.zeros(len(rows), width, device=rows[0].device)
    mask = torch.zeros(len(rows), width, dtype=torch.bool, device=rows[0].device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
        mask[i, : len(row)] = True
    return out, mask
