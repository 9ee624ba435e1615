"""A plain copy of a model that FSDP has sharded over the training processes, to generate and score with.

Under FSDP each process holds one slice of every weight, and each forward pass of the sharded model gathers the
slices of one layer after another from all processes. Generation runs as many forward passes as its longest reply
needs, which differs between processes that answer different prompts, so generating with the sharded model would
leave processes waiting on each other. Instead every process gathers the full weights once, one tensor at a time,
into a plain model in the inference dtype and generates with it on its own (TRL gathers DeepSpeed ZeRO-3 weights
for generation the same way). The copy costs one model's weights in that dtype per process, while it lives.
"""

from __future__ import annotations

import gc
from copy import deepcopy

import torch
from torch import nn


def is_sharded(model: nn.Module) -> bool:
    """Whether any parameter of ``model`` is a distributed tensor (FSDP2 shards every one it wraps)."""
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


@torch.no_grad()
def gathered_copy(model: nn.Module, dtype: torch.dtype, device: torch.device | str) -> nn.Module:
    """A new, unsharded transformers causal LM with ``model``'s weights, in ``dtype`` on ``device``.

    ``model`` is a transformers causal LM sharded with FSDP2 (its parameters DTensors). Every process must call
    this at the same point: each weight is all-gathered from the processes in turn (the state dict's order is the
    same in every one), so at most one full weight in its training dtype exists besides the copy. The copy's
    parameters need gradients where ``model``'s do, so a :class:`rrhf.models.value_head_policy.FrozenReference`
    of it snapshots what training changes.
    """
    from torch.distributed.tensor import DTensor
    from transformers import AutoModelForCausalLM

    with torch.device(device):
        copy = AutoModelForCausalLM.from_config(model.config, dtype=dtype)
    target = copy.state_dict()
    for name, value in model.state_dict().items():
        full = value.full_tensor() if isinstance(value, DTensor) else value
        if name not in target:
            raise KeyError(f"the sharded model's {name} has no place in a plain {type(copy).__name__}")
        target[name].copy_(full)
    trains = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, parameter in copy.named_parameters():
        parameter.requires_grad_(trains.get(name, False))
    copy.generation_config = deepcopy(model.generation_config)  # the folder's, as the trained model has it
    return copy.eval()


def free_cached_memory() -> None:
    """Give the memory of freed tensors back: collect garbage and empty CUDA's cache (nothing on a CPU)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
