"""LoRA adapters (peft) for the trainers: added before training (config ``training.lora``), merged into the
weights before saving, so every saved model is a plain Hugging Face checkpoint.

Only the adapters train (and a reward model's score head, which peft trains in full); the base weights stay
as loaded, so the base model (adapters switched off) is still the model training started from. LoRA is meant
for one GPU or DDP: FSDP shards the weights the merge needs whole, so the two are refused together.

peft is imported only where adapters are added (it takes seconds to import, and most jobs train without LoRA); a
model is a peft model only if peft has been imported, which the checks below rely on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from rrhf.config.block_checks import lora_fsdp_problem
from rrhf.config.blocks import Lora
from rrhf.config.schema import block_defaults

DEFAULTS: dict[str, Any] = block_defaults(Lora.SCHEMA)  # the schema's: r, alpha, dropout, target_modules
TASKS = {"causal_lm": "CAUSAL_LM", "sequence_classification": "SEQ_CLS"}  # peft TaskType names
log = logging.getLogger("rrhf")


def _is_peft_model(module: nn.Module) -> bool:
    """Whether ``module`` is a peft model (never, when peft has not been imported: nothing can be one)."""
    peft = sys.modules.get("peft")
    return peft is not None and isinstance(module, peft.PeftModel)


def lora_config(settings: Lora | dict[str, Any], task: str):
    """peft's LoraConfig of a ``training.lora`` block (missing keys take the schema's defaults); ``task`` is
    ``causal_lm`` or ``sequence_classification`` (then peft also trains the new score head in full)."""
    unknown = sorted(set(settings) - set(DEFAULTS)) if isinstance(settings, dict) else []
    if unknown:
        raise ValueError(f"training.lora: unknown keys {unknown}; known: {sorted(DEFAULTS)}")
    if task not in TASKS:
        raise ValueError(f"LoRA task must be one of {sorted(TASKS)}, not {task!r}")
    from peft import LoraConfig, TaskType

    lora = Lora.coerce(settings)
    targets = lora.target_modules
    return LoraConfig(task_type=TaskType[TASKS[task]], r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=list(targets) if targets else None)


def check_not_fsdp(distributed_type: Any = None) -> None:
    """Raise when LoRA meets FSDP: ``distributed_type`` (accelerate's) is FSDP, or ``accelerate launch`` set
    it up (ACCELERATE_USE_FSDP)."""
    launched = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() in ("1", "true")
    if distributed_type == "FSDP" or launched:
        raise ValueError(lora_fsdp_problem("training", "accelerate launch with FSDP"))


def add_lora(model: nn.Module, settings: Lora | dict[str, Any] | None, task: str = "causal_lm") -> nn.Module:
    """``model`` with LoRA adapters: a transformers model comes back as a peft model; a wrapper holding one as
    ``.lm`` (PPO's policy with its value head) comes back itself with ``.lm`` replaced, its other parameters
    left trainable. Every base weight is frozen. ``settings`` None (no ``training.lora``): ``model`` as it is."""
    if settings is None:
        return model
    from peft import get_peft_model

    check_not_fsdp()
    if isinstance(model, PreTrainedModel):
        model = get_peft_model(model, lora_config(settings, task))
    elif isinstance(getattr(model, "lm", None), PreTrainedModel):
        model.lm = get_peft_model(model.lm, lora_config(settings, task))
    else:
        raise TypeError(f"add_lora: {type(model).__name__} is neither a transformers model nor holds one as .lm")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA %s: %d adapter tensors; %d of %d parameters train", Lora.coerce(settings).as_config(),
             len(adapter_parameter_names(model)), trainable, sum(p.numel() for p in model.parameters()))
    return model


def has_lora(model: nn.Module) -> bool:
    """Whether ``model`` is or holds a peft model."""
    return any(_is_peft_model(module) for module in model.modules())


def merge_lora(model: nn.Module) -> nn.Module:
    """``model`` with every adapter merged into its weights (peft's ``merge_and_unload``, in place): a peft
    model comes back as its transformers model, a module holding peft models (PPO's ``.lm``) as itself with
    them replaced. A model without adapters comes back unchanged."""
    if _is_peft_model(model):
        return model.merge_and_unload()
    for name, child in model.named_children():
        merged = merge_lora(child)
        if merged is not child:
            setattr(model, name, merged)
    return model


def adapter_parameter_names(model: nn.Module) -> list[str]:
    """Names of the adapter weights in ``model`` (peft's ``lora_`` parameters: A, B and the like)."""
    return [name for name, _ in model.named_parameters() if "lora_" in name]


def adapters_disabled(model: nn.Module):
    """A context in which a peft ``model`` runs as its base model (adapters off); for other models, no change."""
    return model.disable_adapter() if _is_peft_model(model) else contextlib.nullcontext()
