"""Loading models and tokenizers the same way in every stage.

Inference stages load a model in the inference dtype straight onto their device. Trainers load it in float32 (the
dtype its weights and optimiser state train in; mixed precision computes in bf16 on top) on the CPU, and the
training loop moves it; under FSDP with ``cpu_ram_efficient_loading`` only the first process reads the weights
(:func:`weights_come_from_main_process`), so a node holds one copy in host memory, not one per GPU.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
)

from rrhf.io import naming_damage
from rrhf.models.sources import model_source_problem
from rrhf.models.value_head_reward import load_value_head_reward_model


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; anything else is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str | torch.dtype, device: str | torch.device = "cpu") -> torch.dtype:
    """The torch dtype of config ``precision.dtype``: ``auto`` is bfloat16 on CUDA (when the GPU has it) and
    float32 elsewhere; ``float32``, ``bfloat16``, ``float16`` or a torch dtype are taken as they are."""
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        cuda = torch.device(device).type == "cuda" and torch.cuda.is_available()
        return torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"precision.dtype: {name!r} is not one of {['auto', *DTYPES]}")
    return DTYPES[name]


def check_model_source(path: str, kind: str = "model") -> None:
    """Raise FileNotFoundError naming ``path`` when it looks local but is missing or lacks what ``kind`` needs,
    or is a hub id not in the cache while HF_HUB_OFFLINE is set (:func:`rrhf.models.sources.model_source_problem`),
    before transformers takes it for a hub id or gives unrelated advice."""
    problem = model_source_problem(str(path), kind)
    if problem:
        raise FileNotFoundError(f"{'tokenizer' if kind == 'tokenizer' else 'model'} path {problem}")


def load_tokenizer(path: str, padding_side: str = "left", trust_remote_code: bool = False):
    """A tokenizer with a pad token (the EOS token when it has none) and the given padding side; raises naming
    ``path`` when it has neither a pad nor an EOS token (responses end in EOS, batches are padded)."""
    check_model_source(path, "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {path!r} has neither an EOS nor a pad token: responses end in EOS "
                             "and batches are padded; set eos_token in its tokenizer_config.json")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def check_vocabulary(model, tokenizer, path: str) -> None:
    """Raise naming ``path`` when the tokenizer has more tokens than the model has embedding rows (a tokenizer
    from another model): its highest ids would index past the table (``IndexError: index out of range``)."""
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ValueError(f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table has "
                         f"{rows} rows, so token ids {rows} to {len(tokenizer) - 1} have no embedding; the "
                         "folder's tokenizer belongs to another model")


def direct_placement(device: str | torch.device) -> dict[str, Any]:
    """from_pretrained's keyword that puts the weights straight on an accelerator ``device`` as they are read (no
    copy of the model in host memory first); none for the CPU."""
    device = torch.device(device)
    return {} if device.type in ("cpu", "meta") else {"device_map": {"": device}}


def load_causal_lm(path: str, device: str | torch.device = "cpu", dtype: str | torch.dtype = "float32"):
    """(model in eval mode on ``device`` with weights in ``dtype`` (:func:`resolve_dtype`), tokenizer padded on
    the left) from a hub id or folder; a bad path or a tokenizer that does not fit the model raises naming it."""
    check_model_source(path)
    tokenizer = load_tokenizer(path, padding_side="left")
    with naming_damage(path, "the causal LM"):
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype, device),
                                                     **direct_placement(device))
    check_vocabulary(model, tokenizer, path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("1", "true")


def launched_with_fsdp() -> bool:
    """Whether this process trains under ``accelerate launch`` with an FSDP config (envs/accelerate/fsdp_*.yaml)."""
    return _flag("ACCELERATE_USE_FSDP")


def weights_come_from_main_process() -> bool:
    """Whether this process builds its model to train without reading the weights: it runs under ``accelerate
    launch`` with FSDP and ``fsdp_cpu_ram_efficient_loading`` (envs/accelerate/fsdp_*.yaml) and it is not the
    first process, whose weights accelerate copies into every process's shards when it prepares the model."""
    return launched_with_fsdp() and _flag("FSDP_CPU_RAM_EFFICIENT_LOADING") and os.environ.get("RANK", "0") != "0"


def load_for_training(path: str, auto_class=AutoModelForCausalLM, **config_changes):
    """A model to train, from a hub id or folder: weights in float32 on the CPU (the training loop moves it), or,
    where the weights come from the first process (:func:`weights_come_from_main_process`), the same model with
    its parameters on the meta device: no host memory for them. ``config_changes`` (e.g. ``num_labels=1``) apply
    to its config either way. Under ``accelerate launch`` the process group exists from here on, so every
    process of a job can agree on what it decides before training starts."""
    from accelerate import PartialState, init_empty_weights
    from accelerate.utils import parse_flag_from_env

    # Joins the launched processes' group (nothing to join in one process), on the CPU where the launch says so,
    # as accelerate's own state would.
    PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    check_model_source(path)
    with naming_damage(path, f"the model to train ({auto_class.__name__})"):
        if not weights_come_from_main_process():
            return auto_class.from_pretrained(path, dtype=torch.float32, **config_changes)
        config = AutoConfig.from_pretrained(path, **config_changes)
        with init_empty_weights(include_buffers=False):  # buffers such as rotary frequencies are computed for real
            model = auto_class.from_config(config, dtype=torch.float32)
        model.tie_weights()  # tying inside init_empty_weights makes a second meta tensor instead
    try:
        model.generation_config = GenerationConfig.from_pretrained(path)
    except OSError:  # the folder has no generation_config.json: the model config's defaults, as from_pretrained
        pass
    return model


def load_causal_lm_for_training(path: str):
    """(causal LM to train, :func:`load_for_training`, tokenizer padded on the left), checked as
    :func:`load_causal_lm` checks them."""
    tokenizer = load_tokenizer(path, padding_side="left")
    model = load_for_training(path)
    check_vocabulary(model, tokenizer, path)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def load_reward_model(source: str | dict[str, Any], device: str | torch.device = "cpu",
                      dtype: str | torch.dtype = "float32"):
    """(reward model in eval mode with weights in ``dtype``, tokenizer padded on the right).

    ``source`` is a path or hub id of a one-label ``AutoModelForSequenceClassification``, or a dict with
    ``path``, ``format`` (``transformers``, or ``value_head_checkpoint`` for a raw backbone + ``v_head``
    state dict such as Dahoas/gptj-rm-static's: :mod:`rrhf.models.value_head_reward`), ``backbone`` and
    ``trust_remote_code``. Either way ``model(input_ids=..., attention_mask=...).logits`` is (n, 1).
    """
    spec = {"path": source} if isinstance(source, str) else source
    path, trust_remote_code = spec["path"], spec.get("trust_remote_code", False)
    if spec.get("format", "transformers") == "value_head_checkpoint":
        check_model_source(path, "value_head_checkpoint")
        check_model_source(spec["backbone"], "backbone")
        model, tokenizer = load_value_head_reward_model(path, spec["backbone"], resolve_dtype(dtype, device),
                                                        trust_remote_code=trust_remote_code)
        return model.to(device).eval(), tokenizer
    check_model_source(path)
    tokenizer = load_tokenizer(path, padding_side="right", trust_remote_code=trust_remote_code)
    with naming_damage(path, "the reward model"):
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=resolve_dtype(dtype, device),
                                                                   trust_remote_code=trust_remote_code,
                                                                   **direct_placement(device))
    check_vocabulary(model, tokenizer, path)
    if model.config.num_labels != 1:
        raise ValueError(f"reward model {path!r} has {model.config.num_labels} labels; a reward model has 1")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(device).eval(), tokenizer


def model_positions(model) -> int | None:
    """The longest sequence the model's position embeddings allow (config n_positions or
    max_position_embeddings); None when its config names no limit."""
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def usable_length(model, requested: int) -> int:
    """``requested``, capped at :func:`model_positions` (if the model names a limit)."""
    limit = model_positions(model)
    return min(requested, limit) if limit else requested


