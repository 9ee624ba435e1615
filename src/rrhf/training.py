"""One training loop for every trainer (LM pre-training, SFT, reward model, RRHF).

Built on ``accelerate``, so the same code runs on the CPU here and under
``accelerate launch`` (DDP or FSDP) on GPUs. Batches are bucketed by length so
little compute goes to padding.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from rrhf.io import atomic_path, write_json, write_parquet

log = logging.getLogger("rrhf")


@dataclass
class TrainingParams:
    """Hyper-parameters of one run (the ``training:`` block of a config entry)."""

    epochs: float = 1
    learning_rate: float = 2e-5
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_length: int = 192
    seed: int = 0

    @classmethod
    def from_config(cls, values: dict[str, Any]) -> "TrainingParams":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of indices of similar length, in a shuffled order.

    Indices are sorted by length (ties broken by a seeded shuffle), cut into
    batches of ``batch_size``, and the batch order is shuffled, so each batch
    pads to nearly its own length. The same seed gives the same batches.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    order.sort(key=lambda i: lengths[i])
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


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


def train_model(
    model: torch.nn.Module,
    examples: Sequence[Any],
    lengths: Sequence[int],
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    compute_loss: Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    params: TrainingParams,
    description: str = "train",
) -> "TrainingResult":
    """Train ``model`` in place; return it with one log row per optimiser step.

    ``compute_loss(model, batch)`` returns the scalar loss and extra scalars to
    log. Each row has ``step, epoch, loss, lr`` plus those extras, averaged over
    the accumulated micro-batches and over processes.
    """
    set_seed(params.seed)
    accelerator = Accelerator(gradient_accumulation_steps=params.gradient_accumulation_steps)
    epochs = max(1, math.ceil(params.epochs))
    processes = accelerator.num_processes
    batches_per_epoch = math.ceil(len(examples) / params.batch_size) // processes
    if batches_per_epoch == 0:
        raise ValueError(f"{len(examples)} examples make no batch of {params.batch_size} "
                         f"for each of {processes} processes")
    total_micro = int(round(params.epochs * batches_per_epoch))
    total_steps = max(1, math.ceil(total_micro / params.gradient_accumulation_steps))
    model = accelerator.prepare(model)  # wrap first (FSDP shards it), then build the optimizer on what it trains
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(params.warmup_ratio * total_steps), total_steps)
    optimizer, scheduler = accelerator.prepare(optimizer, scheduler)
    model.train()

    rows: list[dict[str, float]] = []
    pending: list[dict[str, float]] = []
    micro = 0
    progress = tqdm(total=total_steps, desc=description, disable=not accelerator.is_local_main_process)
    for epoch in range(epochs):
        batches = length_bucketed_batches(lengths, params.batch_size, params.seed + epoch)
        # Under `accelerate launch` each process takes every n-th batch (the same number each).
        mine = batches[accelerator.process_index: batches_per_epoch * processes: processes]
        for batch_indices in mine:
            if micro >= total_micro:
                break
            batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in batch_indices]).items()}
            with accelerator.accumulate(model):
                loss, extras = compute_loss(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and params.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), params.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            micro += 1
            pending.append({"loss": float(loss.detach()), **extras})
            if accelerator.sync_gradients:
                row = _mean_over_processes(accelerator, {key: _nan_mean([p[key] for p in pending])
                                                         for key in pending[0]})
                row.update(step=len(rows) + 1, epoch=epoch + (micro - epoch * batches_per_epoch) / batches_per_epoch,
                           lr=scheduler.get_last_lr()[0])
                rows.append(row)
                pending = []
                progress.update(1)
                progress.set_postfix(loss=f"{row['loss']:.4f}")
                if len(rows) % 10 == 0 or len(rows) == total_steps:
                    log.info("%s step %d/%d loss %.4f", description, len(rows), total_steps, row["loss"])
    progress.close()
    model.eval()
    accelerator.wait_for_everyone()
    return TrainingResult(accelerator, model, rows)


def _mean_over_processes(accelerator: Accelerator, row: dict[str, float]) -> dict[str, float]:
    """The row's values averaged over all processes (each saw different batches); as is in one process."""
    if accelerator.num_processes == 1:
        return row
    values = accelerator.reduce(torch.tensor(list(row.values()), device=accelerator.device), reduction="mean")
    return dict(zip(row, values.tolist()))


def _nan_mean(values: list[float]) -> float:
    """Mean of the values that are not NaN (NaN when all are)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


@dataclass
class TrainingResult:
    """What :func:`train_model` returns: the (possibly wrapped) model, its accelerator and the log rows."""

    accelerator: Accelerator
    model: torch.nn.Module
    rows: list[dict[str, float]]

    @property
    def plain_model(self) -> torch.nn.Module:
        """The model without the DDP/FSDP wrapper."""
        return self.accelerator.unwrap_model(self.model)

    def save(self, output_dir: str, tokenizer, provenance: dict[str, Any],
             metrics: dict[str, Any] | None = None) -> None:
        """Write the model (safetensors), tokenizer, ``train_log.parquet`` and, if given, ``metrics.json``.

        The folder appears complete or not at all (written aside, then renamed),
        and only the main process writes it; every process must call this
        (FSDP gathers the weights from all of them).
        """
        state = self.accelerator.get_state_dict(self.model)
        if self.accelerator.is_main_process:
            with atomic_path(output_dir, directory=True) as tmp:
                self.plain_model.save_pretrained(tmp, state_dict=state)
                tokenizer.save_pretrained(tmp)
                write_parquet(pd.DataFrame(self.rows), tmp / "train_log.parquet", provenance)
                if metrics is not None:
                    write_json(metrics, tmp / "metrics.json")
        self.accelerator.wait_for_everyone()
