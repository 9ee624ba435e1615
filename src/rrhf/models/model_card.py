"""Model cards: the README.md of every model folder the workflow writes, so that a folder can be shared as it is.

A card (huggingface_hub's ``ModelCard``, written offline) says what the model was trained from (``base_model``),
on which data (each file with the provenance it records: the stage that wrote it, the data set and its source),
with which method and settings (the config block the job used, as YAML), and how it did: the training job's own
metrics when it saves the folder, and each evaluation's metrics once a policy evaluation has run on it
(:func:`add_evaluation`, also in the card's ``model-index``). Only folders whose card this workflow wrote are ever
added to; a hub model or a folder of the user's is left as it is. Cards hold no dates or machine facts: the same
run writes the same card.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from rrhf.io import atomic_path, read_provenance

CARD_FILE = "README.md"
WORKFLOW_TAG = "rrhf-workflow"
# What each stage did, in a sentence (the stage is the provenance's ``stage``).
METHODS = {
    "pretrain_lm": "pre-trained from scratch on the training set's transcripts (a small language model of the "
                   "tiny default, whose architecture is the `build` block below)",
    "train_sft": "supervised fine-tuning (SFT) on each training prompt's chosen reply, the loss on the reply's "
                 "tokens",
    "train_reward_model": "a reward model: a value head on a language model, trained on preference pairs with the "
                          "pairwise loss -log sigmoid(r(chosen) - r(rejected))",
    "train_rrhf": "RRHF: a ranking loss over the length-normalised log-probabilities of each "
                  "prompt's responses, ordered by their rewards, plus fine-tuning on the best response",
    "train_online_rrhf": "online RRHF (the paper's OP-k): RRHF on responses sampled again from the policy every k "
                         "steps and scored by the reward model",
    "train_ppo": "PPO (as trlX runs it): rollouts scored by the reward model with a KL penalty to the untrained "
                 "policy, clipped policy and value losses",
    "train_preference_method": "a preference method beside RRHF (DPO and its successors, rrhf.losses), on RRHF's "
                               "training set",
    "train_segment_reward_model": "a fine-grained reward model (Wu et al., 2023) that scores segments of a reply",
    "import_model": "imported from a GGUF file or a published model into a transformers folder; the weights are "
                    "those of the source",
}
# What a data file's provenance says that a card repeats (the setting and where its responses came from).
DATA_KEYS = ("stage", "setting", "policy", "sampler", "sampled", "provided", "dataset", "split")
SETTINGS_KEYS = ("build", "rrhf", "ppo", "online", "hyper", "method", "reward_models", "fine_grained", "kind",
                 "prompt_format")
# The evaluation metrics a card's model-index carries (the rest are in its text).
INDEXED_METRICS = ("reward_mean", "gold_reward_mean", "ppl", "kl_to_initial_mean", "distinct_2", "response_tokens")
# The Evaluation section's first line, before any evaluation and after the first (add_evaluation swaps them).
NOT_EVALUATED = "Not evaluated yet: each policy evaluation of this folder adds its metrics here."
EVALUATED = "Each policy evaluation of this folder, with its metrics (the workflow's metrics.json):"


def data_facts(path: str) -> dict[str, Any]:
    """What a data file says about itself: its rows, the stage that wrote it and the data set it comes from."""
    facts: dict[str, Any] = {"file": path}
    if Path(path).is_file() and path.endswith(".parquet"):
        provenance = read_provenance(path)
        facts["rows"] = pq.read_metadata(path).num_rows
        facts.update({key: provenance[key] for key in DATA_KEYS if provenance.get(key)})
        spec = provenance.get("spec") or {}
        facts.update({key: spec[key] for key in ("source", "data_dir", "revision") if spec.get(key)})
    return facts


def base_model_of(provenance: dict[str, Any]) -> str | None:
    """The model a stage started from: its ``policy`` or ``init`` (``source`` for an import); None when it was
    built from scratch."""
    return next((provenance[key] for key in ("policy", "init", "source") if provenance.get(key)), None)


def _data_line(facts: dict[str, Any]) -> str:
    """A Markdown list item: the data file and what it records about itself."""
    said = {key: value for key, value in facts.items() if key != "file"}
    return f"- `{facts['file']}`" + (f": {json.dumps(said, sort_keys=True, default=str)}" if said else "")


def _yaml_block(values: dict[str, Any]) -> str:
    return "```yaml\n" + yaml.safe_dump(json.loads(json.dumps(values, default=str)), sort_keys=True).strip() + "\n```"


def flat_metrics(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The metrics with nested ones named ``outer.inner``; lists and other values left out."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            flat.update(flat_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[f"{prefix}{key}"] = value
    return flat


def _metric_lines(metrics: dict[str, Any]) -> list[str]:
    """A Markdown table of the metrics."""
    rows = [f"| {key} | {value:.6g} |" if isinstance(value, float) else f"| {key} | {value} |"
            for key, value in sorted(flat_metrics(metrics).items())]
    return ["| metric | value |", "|---|---|", *rows]


def card_text(name: str, provenance: dict[str, Any], data: list[dict[str, Any]],
              metrics: dict[str, Any] | None = None) -> str:
    """The card's Markdown body for the model folder ``name`` written by a stage with this ``provenance``, trained
    on ``data`` (each file's :func:`data_facts`), with the job's own ``metrics``."""
    stage = provenance.get("stage", "unknown")
    base = base_model_of(provenance)
    lines = [f"# {name}", "",
             f"Written by rrhf-workflow, a reproduction of RRHF (Yuan et al., 2023), in its `{stage}` stage: "
             f"{METHODS.get(stage, 'see the settings below')}.", "",
             "## Base model", "",
             f"`{base}` (where it is a folder of this workflow, its own card says what it came from)." if base
             else "None: trained from scratch.", ""]
    lines += ["## Training data", ""]
    lines += [_data_line(facts) for facts in data] or \
        ["None: imported as it is." if stage == "import_model" else "Not recorded."]
    settings = {key: provenance[key] for key in SETTINGS_KEYS if provenance.get(key) is not None}
    named = ", ".join(sorted({f"`{facts['setting']}`" for facts in data if facts.get("setting")}))
    lines += ["", "## Method and settings", ""]
    if named:
        lines += [f"Setting {named}, as the training set records it.", ""]
    lines += ["The config block the job ran with (config/README.md describes each key):", "", _yaml_block(settings)
              if settings else "None recorded.", ""]
    if metrics:
        lines += ["## Training metrics", "", "From the job's `metrics.json`:", "", *_metric_lines(metrics), ""]
    lines += ["## Evaluation", "", NOT_EVALUATED, "",
              "## Use", "", "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer", "",
              f'model = AutoModelForCausalLM.from_pretrained("{name}")',
              f'tokenizer = AutoTokenizer.from_pretrained("{name}")', "```", "",
              "The training log is `train_log.parquet` (one row per step) and, where tracked, `tensorboard/`.", "",
              "## Citation", "", "RRHF: Yuan et al., *RRHF: Rank Responses to Align Language Models with Human "
              "Feedback without tears*, NeurIPS 2023 (arXiv:2304.05302); this workflow: its CITATION.cff.", ""]
    return "\n".join(lines)


def card_data(provenance: dict[str, Any], data: list[dict[str, Any]]) -> ModelCardData:
    """The card's metadata: library, base model, the data sets' sources (``data``: each file's
    :func:`data_facts`), tags and, where the source says it, the licence."""
    stage = provenance.get("stage", "unknown")
    datasets = sorted({facts["source"] for facts in data if facts.get("source")})
    licence = (provenance.get("gguf") or {}).get("license")
    return ModelCardData(library_name="transformers", base_model=base_model_of(provenance),
                         datasets=datasets or None, license=licence,
                         tags=[WORKFLOW_TAG, stage.removeprefix("train_").replace("_", "-")])


def write_model_card(folder: str | os.PathLike, name: str, provenance: dict[str, Any],
                     metrics: dict[str, Any] | None = None) -> Path:
    """Write ``folder``/README.md, the card of the model folder ``name`` (the path it is known by), from the stage's
    ``provenance`` (with ``data``: the files it trained on) and its ``metrics``. Returns the card's path."""
    data = [data_facts(str(path)) for path in provenance.get("data") or []]  # each file read once
    metadata = card_data(provenance, data).to_yaml()
    card = ModelCard(f"---\n{metadata}\n---\n\n{card_text(name, provenance, data, metrics)}")
    path = Path(folder) / CARD_FILE
    card.save(path)
    return path


def _evaluation_markers(evaluation: str) -> tuple[str, str]:
    return f"<!-- evaluation {evaluation} -->", f"<!-- end of evaluation {evaluation} -->"


def add_evaluation(model_folder: str | os.PathLike, evaluation: str, metrics: dict[str, Any],
                   dataset: dict[str, Any] | None = None) -> bool:
    """Add (or replace) the evaluation ``evaluation`` (its output folder) with its ``metrics`` in the card of
    ``model_folder``, in the text and in the card's ``model-index``; the card is rewritten aside, then renamed.
    Returns False, touching nothing, when the folder has no card this workflow wrote (an untrained model, a hub
    id, a folder of the user's)."""
    path = Path(model_folder) / CARD_FILE
    if not path.is_file():
        return False
    card = ModelCard.load(path, ignore_metadata_errors=True)
    if WORKFLOW_TAG not in (card.data.tags or []):
        return False
    start, end = _evaluation_markers(evaluation)
    block = "\n".join([start, f"### `{evaluation}`", "", *_metric_lines(metrics), end])
    text = re.sub(rf"\n{re.escape(start)}.*?{re.escape(end)}", "", card.text, flags=re.S)
    text = text.replace(NOT_EVALUATED, EVALUATED)
    text = text.replace("\n## Use\n", f"\n{block}\n\n## Use\n", 1)
    source = (dataset or {}).get("source") or "test set"
    # Each result carries its evaluation's folder as its metric configuration (source_name would need a URL).
    kept = [result for result in card.data.eval_results or [] if result.metric_config != evaluation]
    new = [EvalResult(task_type="text-generation", dataset_type=str(source), dataset_name=f"{source} test prompts",
                      metric_type=key, metric_value=float(value), metric_config=evaluation,
                      metric_name=f"{key} ({evaluation})")
           for key, value in sorted(metrics.items())
           if isinstance(value, (int, float)) and not isinstance(value, bool) and key in INDEXED_METRICS]
    card.data.eval_results = kept + new or None
    if card.data.eval_results and not card.data.model_name:
        card.data.model_name = str(model_folder)
    with atomic_path(path) as tmp:
        ModelCard(f"---\n{card.data.to_yaml()}\n---\n{text}").save(tmp)
    return True

