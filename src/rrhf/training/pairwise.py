"""Pairwise (Bradley-Terry) training of a one-label scorer on (chosen, rejected) sequences: the batch and the
loss that the reward model and the fine-grained completeness reward model share."""

from __future__ import annotations

import torch

from rrhf.losses import bradley_terry_loss, pairwise_accuracy
from rrhf.padding import pad_batch


def collate_pairs(examples: list[tuple[list[int], list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Stack chosen then rejected sequences: ``input_ids``/``attention_mask`` of shape (2B, T)."""
    input_ids, attention_mask = pad_batch([e[0] for e in examples] + [e[1] for e in examples], pad_token_id)
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def reward_pair_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Bradley-Terry loss of a (2B, T) batch whose first half is chosen; also logs batch accuracy."""
    rewards = model(**batch).logits.squeeze(-1)
    chosen, rejected = rewards.chunk(2)
    return bradley_terry_loss(chosen, rejected), {"accuracy": pairwise_accuracy(chosen.detach(), rejected.detach())}
