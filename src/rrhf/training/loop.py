"""One training loop for every trainer (LM pre-training, SFT, reward model, RRHF).

Built on ``accelerate``, so the same code runs on the CPU here and under
``accelerate launch`` (DDP or FSDP) on GPUs. Batches are bucketed by length so
little compute goes to padding. With a ``checkpoint`` setting the loop saves
checkpoints at optimiser-step boundaries and a restarted job resumes from the
latest (rrhf.training.checkpoints), ending with the same model and log rows as a run
that was never interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm
from transformers import PreTrainedModel, get_constant_schedule_with_warmup, get_linear_schedule_with_warmup

from rrhf.config.blocks import Precision, Tracking, Training
from rrhf.io import atomic_path, write_json, write_parquet
from rrhf.models.adapters import check_not_fsdp, has_lora, merge_lora
from rrhf.models.model_card import write_model_card
from rrhf.models.value_head_policy import freeze_bottom_layers
from rrhf.training.checkpoints import Checkpoints, CheckpointSettings
from rrhf.training.sharded_copy import free_cached_memory, gathered_copy, is_sharded
from rrhf.training.tracking import TrainingTrackers

log = logging.getLogger("rrhf")


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


def resolve_mixed_precision(name: str) -> str | None:
    """accelerate's mixed_precision for ``name``: ``auto`` is bf16 on CUDA and no on the CPU. Under
    ``accelerate launch`` (ACCELERATE_MIXED_PRECISION set) None, so the launch config decides."""
    if os.environ.get("ACCELERATE_MIXED_PRECISION"):
        return None
    if name == "auto":
        return "bf16" if torch.cuda.is_available() else "no"
    return name


def enable_gradient_checkpointing(model: torch.nn.Module) -> int:
    """Turn on activation recomputation in every transformers model inside ``model`` (the model itself, PPO's
    policy inside its value-head wrapper, a peft-wrapped model); return how many were found (0: unsupported)."""
    found = 0
    for module in model.modules():
        if isinstance(module, PreTrainedModel) and module.supports_gradient_checkpointing:
            # Non-reentrant: correct when the inputs of a checkpointed block need no gradient (frozen embeddings).
            module.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            found += 1
    return found


def micro_batches_per_epoch(count: int, batch_size: int, processes: int) -> int:
    """Micro-batches each of ``processes`` runs per pass over ``count`` examples (the last batch may be short)."""
    return math.ceil(count / batch_size) // processes


class Trainer:
    """A model prepared by ``accelerate`` with its AdamW optimiser and learning-rate schedule.

    ``training`` is a run's hyper-parameters, ``precision`` the run-wide number formats (mixed precision,
    gradient checkpointing). :meth:`run_epochs` steps it over a list of examples; it can be called again
    (PPO calls it once per iteration on fresh rollouts) and the optimiser state,
    the schedule and the log rows carry over. :func:`train_model` is the
    one-call form every other trainer uses. Only parameters with
    ``requires_grad`` are optimised.

    ``checkpoint`` (the job's ``checkpoints:`` settings, see
    :class:`rrhf.training.checkpoints.CheckpointSettings`) turns on checkpoints:
    :meth:`resume` loads the latest, :meth:`checkpoint` saves one when due.
    ``monitor(trainer, step, last)`` adds its measurements to each step's log row (e.g.
    rrhf.training.reward_monitor); every process calls it at every step. ``tracking`` (the config's block) sends
    each log row to its trackers as it is made, the run named after ``output_dir``, the model folder the job
    writes (rrhf.training.tracking.TrainingTrackers).

    The model, its optimiser and schedule are prepared together, as FSDP2 needs (it replaces the parameters the
    optimiser holds); without FSDP the model is on its device before the optimiser is made. Anything else built
    from the model's weights (a reference snapshot, a gathered copy) is built from :attr:`model` after this, so
    it lives where the prepared model lives.
    """

    def __init__(self, model: torch.nn.Module, training: Training | dict[str, Any],
                 precision: Precision | dict[str, Any], total_steps: int, description: str = "train",
                 checkpoint: dict[str, Any] | None = None,
                 monitor: Callable[["Trainer", int, bool], dict[str, float]] | None = None,
                 tracking: Tracking | dict[str, Any] | None = None, output_dir: str | None = None):
        self.params = params = Training.coerce(training)
        precision = Precision.coerce(precision)
        set_seed(params.seed)
        self.description = description
        self.total_steps = max(1, total_steps)
        self.accelerator = Accelerator(gradient_accumulation_steps=params.gradient_accumulation_steps,
                                       mixed_precision=resolve_mixed_precision(precision.mixed_precision))
        if precision.gradient_checkpointing and not enable_gradient_checkpointing(model):
            raise ValueError(f"gradient_checkpointing: {type(model).__name__} has no transformers model that "
                             "supports it")
        if params.layers_trained is not None:
            if has_lora(model):
                log.warning("training.layers_trained is not used with training.lora: every base weight is frozen "
                            "and the adapters train")
            else:
                freeze_bottom_layers(model, params.layers_trained, "training.layers_trained")
        if self.accelerator.distributed_type != DistributedType.FSDP:
            # Where prepare would put it, before the optimiser holds its parameters: a move to another kind of
            # device makes new parameter objects. (FSDP shards the model in prepare and swaps them itself.)
            model = model.to(self.accelerator.device)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=params.learning_rate,
                                      betas=tuple(params.adam_betas), eps=params.adam_epsilon,
                                      weight_decay=params.weight_decay)
        warmup = int(params.warmup_ratio * self.total_steps)
        if params.lr_schedule == "constant":
            scheduler = get_constant_schedule_with_warmup(optimizer, warmup)
        elif params.lr_schedule == "linear":
            scheduler = get_linear_schedule_with_warmup(optimizer, warmup, self.total_steps)
        else:
            raise ValueError(f"lr_schedule must be 'linear' or 'constant', not {params.lr_schedule!r}")
        # One call: under FSDP2 the model is sharded and the optimiser's parameters are swapped for the shards.
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(model, optimizer, scheduler)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.rows: list[dict[str, float]] = []
        settings = CheckpointSettings.from_config(checkpoint)
        self.checkpoints = Checkpoints(settings, self.accelerator) if settings else None
        self.monitor = monitor
        self.trackers = TrainingTrackers(tracking, output_dir or description, self.accelerator.is_main_process)
        self.model.train()
        self.progress = tqdm(total=self.total_steps, desc=description,
                             disable=not self.accelerator.is_local_main_process)

    def resume(self) -> dict[str, Any] | None:
        """Load this job's latest checkpoint, if any, into the model, optimiser, schedule and RNGs and take its
        log rows; return its saved loop state (what :meth:`checkpoint` was given), or None to start afresh."""
        state = self.checkpoints.load() if self.checkpoints else None
        if state is not None:
            self.rows = state["rows"]
            for row in self.rows:  # the trackers start afresh: the steps before the checkpoint first
                self.trackers.log(row)
            self.progress.update(len(self.rows))
            log.info("%s resumes after step %d of %d", self.description, len(self.rows), self.total_steps)
        return state

    def checkpoint(self, loop_state: dict[str, Any] | Callable[[], dict[str, Any]]) -> None:
        """Save a checkpoint when one is due (every N steps or M minutes). Call it between optimiser steps;
        ``loop_state`` (JSON, or a function that makes it) is what the caller needs to resume its loop there."""
        if self.checkpoints and self.checkpoints.due(len(self.rows)):
            state = loop_state() if callable(loop_state) else loop_state
            self.checkpoints.save(len(self.rows), {**state, "rows": self.rows})

    def batches_per_epoch(self, count: int) -> int:
        """Micro-batches each process runs per pass over ``count`` examples; raises when that is none."""
        processes = self.accelerator.num_processes
        per_epoch = micro_batches_per_epoch(count, self.params.batch_size, processes)
        if per_epoch == 0:
            raise ValueError(f"{count} examples make no batch of {self.params.batch_size} "
                             f"for each of {processes} processes")
        return per_epoch

    def run_epochs(
        self,
        examples: Sequence[Any],
        lengths: Sequence[int],
        collate: Callable[[list[Any]], dict[str, torch.Tensor]],
        compute_loss: Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
        epochs: float,
        seed: int,
        start_micro: int = 0,
        on_step: Callable[[int], None] | None = None,
        annotate: Callable[[dict[str, float]], None] | None = None,
    ) -> list[dict[str, float]]:
        """Train on ``examples`` for ``epochs`` passes (fractions allowed); return this call's log rows.

        ``compute_loss(model, batch)`` returns the scalar loss and extra scalars to
        log. Each row has ``step, epoch, loss, lr`` plus those extras, averaged over
        the accumulated micro-batches and over processes. Batches are
        :func:`length_bucketed_batches` seeded with ``seed + epoch``. The call ends
        with an optimiser step even when its micro-batches do not fill the last
        accumulation group, so no gradient carries over into the next call (PPO's
        next iteration, online RRHF's next sampling round).

        A resumed call skips its first ``start_micro`` micro-batches (done before the checkpoint); ``on_step``
        is called with the number of micro-batches done after each optimiser step (where a checkpoint can go).
        ``annotate(row)`` completes each row in place (columns of the caller's) before it is kept and tracked.
        """
        accelerator, params = self.accelerator, self.params
        processes = accelerator.num_processes
        per_epoch = self.batches_per_epoch(len(examples))
        total_micro = int(round(epochs * per_epoch))
        first_row = len(self.rows)
        pending: list[dict[str, float]] = []
        micro = 0
        for epoch in range(max(1, math.ceil(epochs))):
            batches = length_bucketed_batches(lengths, params.batch_size, seed + epoch)
            # Under `accelerate launch` each process takes every n-th batch (the same number each).
            for batch_indices in batches[accelerator.process_index: per_epoch * processes: processes]:
                if micro >= total_micro:
                    break
                if micro < start_micro:
                    micro += 1
                    continue
                batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in batch_indices]).items()}
                if micro == total_micro - 1:  # accelerate.accumulate() then counts this micro-batch as a group's last
                    accelerator.step = params.gradient_accumulation_steps - 1
                with accelerator.accumulate(self.model):
                    loss, extras = compute_loss(self.model, batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and params.max_grad_norm:
                        accelerator.clip_grad_norm_(self.trainable, params.max_grad_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                micro += 1
                pending.append({"loss": float(loss.detach()), **extras})
                if accelerator.sync_gradients:
                    row = _mean_over_processes(accelerator, {key: _nan_mean([p[key] for p in pending])
                                                             for key in pending[0]})
                    row.update(step=len(self.rows) + 1, epoch=micro / per_epoch, lr=self.scheduler.get_last_lr()[0])
                    if self.monitor is not None:
                        row.update(self.monitor(self, row["step"], row["step"] == self.total_steps))
                    if annotate is not None:
                        annotate(row)
                    self.rows.append(row)
                    self.trackers.log(row)
                    pending = []
                    self._report(row)
                    if on_step is not None:
                        on_step(micro)
        return self.rows[first_row:]

    def _report(self, row: dict[str, float]) -> None:
        self.progress.update(1)
        self.progress.set_postfix(loss=f"{row['loss']:.4f}")
        if len(self.rows) % 10 == 0 or len(self.rows) == self.total_steps:
            log.info("%s step %d/%d loss %.4f", self.description, len(self.rows), self.total_steps, row["loss"])

    @contextlib.contextmanager
    def generating(self) -> Iterator[torch.nn.Module]:
        """The model as trained so far, to generate and score with in this process on its own, in eval mode
        (no dropout) under the training precision's autocast; the training mode comes back afterwards.

        In one process or under DDP that is the model itself, unwrapped (a forward pass of it needs no other
        process). Under FSDP every forward pass of the sharded model gathers weights from all processes, so
        processes generating replies of different lengths would wait on each other: every process takes part in
        gathering a plain copy (:func:`rrhf.training.sharded_copy.gathered_copy`, in the inference dtype of the
        mixed precision) and generates with that; the copy is freed on leaving.
        """
        plain = self.accelerator.unwrap_model(self.model)
        sharded = is_sharded(plain)
        model = gathered_copy(plain, self.inference_dtype, self.accelerator.device) if sharded else plain
        was_training = plain.training
        model.eval()
        try:
            with self.accelerator.autocast():
                yield model
        finally:
            plain.train(was_training)
            if sharded:
                del model
                free_cached_memory()

    @property
    def inference_dtype(self) -> torch.dtype:
        """The dtype forward passes compute in: bfloat16 / float16 under that mixed precision, else float32."""
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(self.accelerator.mixed_precision),
                                                                  torch.float32)

    def finish(self) -> "TrainingResult":
        """Close the progress bar, put the model in eval mode, and return it with every log row."""
        self.progress.close()
        self.model.eval()
        self.accelerator.wait_for_everyone()
        return TrainingResult(self.accelerator, self.model, self.rows, self.checkpoints, self.trackers)


def train_model(
    model: torch.nn.Module,
    examples: Sequence[Any],
    lengths: Sequence[int],
    collate: Callable[[list[Any]], dict[str, torch.Tensor]],
    compute_loss: Callable[[torch.nn.Module, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]],
    training: Training | dict[str, Any],
    precision: Precision | dict[str, Any],
    description: str = "train",
    checkpoint: dict[str, Any] | None = None,
    monitor: Callable[[Trainer, int, bool], dict[str, float]] | None = None,
    tracking: Tracking | dict[str, Any] | None = None,
    output_dir: str | None = None,
) -> "TrainingResult":
    """Train ``model`` in place for ``training.epochs``; return it with one log row per optimiser step.

    ``compute_loss(model, batch)`` returns the scalar loss and extra scalars to
    log (see :meth:`Trainer.run_epochs`). With ``checkpoint`` settings it saves
    checkpoints as it goes and resumes from this job's latest one. ``monitor``, ``tracking`` and ``output_dir`` see
    :class:`Trainer`.
    """
    params = Training.coerce(training)
    # Steps are counted before the accelerator exists: one process unless launched with more.
    per_epoch = micro_batches_per_epoch(len(examples), params.batch_size, int(os.environ.get("WORLD_SIZE", "1")))
    total_micro = int(round(params.epochs * per_epoch))
    trainer = Trainer(model, params, precision, math.ceil(total_micro / params.gradient_accumulation_steps),
                      description, checkpoint, monitor, tracking, output_dir)
    state = trainer.resume()
    trainer.run_epochs(examples, lengths, collate, compute_loss, params.epochs, params.seed,
                       start_micro=state["micro"] if state else 0,
                       on_step=lambda micro: trainer.checkpoint({"micro": micro}))
    return trainer.finish()


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
    checkpoints: Checkpoints | None = None
    trackers: TrainingTrackers | None = None

    @property
    def plain_model(self) -> torch.nn.Module:
        """The model without the DDP/FSDP wrapper."""
        return self.accelerator.unwrap_model(self.model)

    def save(self, output_dir: str, tokenizer, provenance: dict[str, Any],
             metrics: dict[str, Any] | None = None, tables: dict[str, pd.DataFrame] | None = None) -> None:
        """Write the model (safetensors), tokenizer, ``train_log.parquet`` and, if given, ``metrics.json`` and
        ``tables`` (file name -> frame, written as Parquet with the same provenance); close the run's trackers
        (the provenance as its settings) and copy TensorBoard's files into ``tensorboard/``; write the folder's
        model card, README.md, from the provenance (``data``: the files trained on) and the metrics
        (rrhf.models.model_card).

        The folder appears complete or not at all (written aside, then renamed),
        and only the main process writes it; every process must call this
        (FSDP gathers the weights from all of them). LoRA adapters (rrhf.models.adapters) are merged into the
        model's weights first, in place, so the folder is a plain checkpoint. The job's resume checkpoints
        are removed once it is in place (unless kept).
        """
        plain, state = self.plain_model, None
        if has_lora(plain):
            check_not_fsdp(self.accelerator.distributed_type)
            plain = merge_lora(plain)
        else:
            state = self.accelerator.get_state_dict(self.model)
        if self.accelerator.is_main_process:
            with atomic_path(output_dir, directory=True) as tmp:
                plain.save_pretrained(tmp, state_dict=state)
                tokenizer.save_pretrained(tmp)
                write_parquet(pd.DataFrame(self.rows), tmp / "train_log.parquet", provenance)
                if metrics is not None:
                    write_json(metrics, tmp / "metrics.json")
                for name, frame in (tables or {}).items():
                    write_parquet(frame, tmp / name, provenance)
                write_model_card(tmp, str(output_dir), provenance, metrics)
                if self.trackers is not None:
                    self.trackers.finish({"output": str(output_dir), **provenance}, tmp / "tensorboard")
        self.accelerator.wait_for_everyone()
        if self.checkpoints is not None:
            self.checkpoints.finish()
