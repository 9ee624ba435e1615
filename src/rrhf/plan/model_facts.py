"""The sizes of the models a config names, read from their configs without their weights, for the memory plan.

A model's config comes from its folder's config.json, from the Hugging Face cache for a hub id, or, for the hub
models of config/paper.yaml that a machine has not downloaded, from ``known_models.yaml`` beside this module
(their config.json values as published). A model built here has its recipe's shape (a pretrain build) or its
init's (an sft or reward build). The parameters are counted exactly by building the model, with one block and
with two, on the meta device (no memory); torch and transformers are imported only then.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rrhf.models.sources import hub_offline, is_hub_id

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

KNOWN_MODELS = Path(__file__).with_name("known_models.yaml")
HEADS = ("causal_lm", "sequence_classification", "token_classification")


@dataclass(frozen=True)
class ModelFacts:
    """What memory depends on: numbers of parameters (all, one transformer block's, the embeddings'), layers,
    widths (hidden, MLP, keys and values per token and layer), vocabulary and positions."""

    source: str
    parameters: int
    block_parameters: int
    embedding_parameters: int
    layers: int
    hidden: int
    intermediate: int
    kv_width: int
    vocabulary: int
    positions: int | None

    def kv_bytes_per_token(self, dtype_bytes: int) -> int:
        """Key/value cache of one token over all layers."""
        return 2 * self.layers * self.kv_width * dtype_bytes


def config_source(plan: "Plan", name: str) -> tuple[dict[str, Any], str]:
    """(config.json values, where they come from) of the model behind the ``models`` entry ``name``: a value-head
    checkpoint's backbone, a build's recipe (pretrain) or init (sft, reward), or its path."""
    spec = plan.models[name]
    build = spec.get("build")
    if build is not None:
        if build["kind"] == "pretrain":
            tokenizer = plan.models.get(build.get("tokenizer"), {}).get("build") or {}
            return built_config(build["architecture"], tokenizer.get("vocab_size")), f"models.{name}.build"
        return config_source(plan, build["init"])
    path = spec["backbone"] if spec.get("format") == "value_head_checkpoint" else spec["path"]
    return read_config(str(path), plan.config.get("offline", True))


def built_config(architecture: dict[str, Any], vocabulary: int | None) -> dict[str, Any]:
    """config.json values of an LM that rrhf.models.tiny.new_causal_lm builds with ``architecture``."""
    vocabulary = vocabulary or 50257
    if architecture["family"] == "gpt2":
        return {"model_type": "gpt2", "vocab_size": vocabulary, "n_layer": architecture["n_layer"],
                "n_embd": architecture["n_embd"], "n_head": architecture["n_head"],
                "n_positions": architecture["n_positions"]}
    from rrhf.models.tiny import llama_intermediate_size

    width = architecture["n_embd"]
    return {"model_type": "llama", "vocab_size": vocabulary, "hidden_size": width,
            "intermediate_size": llama_intermediate_size(width), "num_hidden_layers": architecture["n_layer"],
            "num_attention_heads": architecture["n_head"], "num_key_value_heads": architecture["n_head"],
            "max_position_embeddings": architecture["n_positions"], "tie_word_embeddings": True}


def read_config(path: str, offline: bool = True) -> tuple[dict[str, Any], str]:
    """(config.json values, where read) of a local folder or hub id: the folder, the hub cache, the table of known
    hub models, or (not ``offline``) the hub; raises naming the path when none has it."""
    if not is_hub_id(path):
        file = Path(path).expanduser() / "config.json"
        if not file.is_file():
            raise FileNotFoundError(f"{path}: no config.json to read the model's size from")
        return json.loads(file.read_text()), str(file)
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = path.partition("@")
    cached = try_to_load_from_cache(repo, "config.json", revision=revision or None)
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text()), cached
    known = yaml.safe_load(KNOWN_MODELS.read_text())
    if repo in known:
        return known[repo], f"{KNOWN_MODELS.name} (its config.json on the hub)"
    if not (offline or hub_offline()):
        from huggingface_hub import hf_hub_download

        try:
            return json.loads(Path(hf_hub_download(repo, "config.json", revision=revision or None)).read_text()), repo
        except Exception as error:  # the hub unreachable or the repo unknown: said below
            reason = f" (downloading it failed: {type(error).__name__}: {error})"
    else:
        reason = " (the hub is offline)"
    raise FileNotFoundError(f"{path}: its config.json is not in the Hugging Face cache{reason}, and it is not one of "
                            f"the hub models whose sizes {KNOWN_MODELS.name} knows; download it first (`hf download "
                            f"{repo} config.json`) so that its memory can be planned")


@lru_cache(maxsize=64)
def _facts(config_json: str, head: str, source: str) -> ModelFacts:
    """Count a model of one and of two blocks on the meta device (fast, however many blocks the model has): the
    difference is one block's parameters, and the whole model has the one-block model's plus that many more."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    values = json.loads(config_json)
    extra = {"num_labels": 1 if head == "sequence_classification" else 2} if head != "causal_lm" else {}
    config = AutoConfig.for_model(**{**values, **extra})
    auto = {"causal_lm": AutoModelForCausalLM, "sequence_classification": AutoModelForSequenceClassification,
            "token_classification": AutoModelForTokenClassification}[head]
    layers = config.num_hidden_layers
    counted = []
    for blocks in (1, 2):
        shrunk = AutoConfig.for_model(**{**values, **extra})  # afresh: building a model may adapt its config
        shrunk.num_hidden_layers = blocks
        with torch.device("meta"):
            model = auto.from_config(shrunk)
        counted.append(sum(p.numel() for p in model.parameters()))
    block = counted[1] - counted[0]
    embeddings = {id(p): p.numel() for module in (model.get_input_embeddings(), getattr(
        model, "get_output_embeddings", lambda: None)()) if module is not None for p in module.parameters()}
    hidden = config.hidden_size
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_width = getattr(config, "head_dim", None) or hidden // heads
    intermediate = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return ModelFacts(source, counted[0] + (layers - 1) * block, block, sum(embeddings.values()), layers, hidden,
                      intermediate, kv_heads * head_width, config.vocab_size, positions)


COUNTING = "2"  # the version of _facts's counting: a change discards what the cache holds


def cached_facts(config_json: str, head: str, source: str) -> ModelFacts:
    """:func:`_facts`, kept on disk (``$XDG_CACHE_HOME/rrhf/model_facts/``, by default under ~/.cache) by the
    config's contents: counting imports torch and transformers, seconds that every Snakemake start of a GPU config
    would pay again."""
    key = hashlib.sha256(f"{COUNTING}\n{head}\n{config_json}".encode()).hexdigest()[:32]
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rrhf" / "model_facts"
    file = folder / f"{key}.json"
    try:
        return ModelFacts(**{**json.loads(file.read_text()), "source": source})
    except (OSError, ValueError, TypeError):
        pass
    facts = _facts(config_json, head, source)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{key}.{os.getpid()}"
        temporary.write_text(json.dumps(asdict(facts)))
        temporary.replace(file)
    except OSError:  # a read-only home: counted again next time
        pass
    return facts


def model_facts(plan: "Plan", name: str, head: str = "causal_lm") -> ModelFacts:
    """The sizes of ``models`` entry ``name`` with ``head`` (one of :data:`HEADS`; a value-head checkpoint is its
    backbone with one output: ``sequence_classification``)."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, not {head!r}")
    values, source = config_source(plan, name)
    return cached_facts(json.dumps(values, sort_keys=True), head, source)


def facts_of(plan: "Plan", name_or_path: str, head: str = "causal_lm") -> ModelFacts:
    """:func:`model_facts` of a ``models`` entry, or of a folder or hub id given directly (a fine-grained reward
    model's init may be either)."""
    if name_or_path in plan.models:
        return model_facts(plan, name_or_path, head)
    values, source = read_config(name_or_path, plan.config.get("offline", True))
    return cached_facts(json.dumps(values, sort_keys=True), head, source)
