"""Shared fixtures: tiny real models and data built locally (nothing from the hub)."""

import os
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from workflow_helpers import FAST_OVERRIDES, copy_of, run_snakemake

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_HH = REPO.parent / "shared" / "data" / "hh-rlhf-harmless-base-test.jsonl.gz"


@pytest.fixture(scope="session")
def synthetic_frame() -> pd.DataFrame:
    """400 normalised synthetic pairs (prompt_id, prompt, chosen, rejected)."""
    from rrhf.data.preference_pairs import normalise_pairs
    from rrhf.data.synthetic_hh import generate_pairs

    frame, _ = normalise_pairs(generate_pairs(400, seed=0), origin="test")
    return frame


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory, synthetic_frame) -> Path:
    """A byte-level BPE tokenizer (vocab 400) trained on the synthetic transcripts."""
    from rrhf.models.tiny import train_tokenizer, transcripts

    path = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(transcripts(synthetic_frame), vocab_size=400).save_pretrained(path)
    return path


def save_new_lm(folder: Path, tokenizer_dir: Path, architecture: dict) -> Path:
    """A randomly initialised causal LM of ``architecture`` (rrhf.models.tiny.new_causal_lm, seed 0) and its tokenizer,
    saved with save_pretrained in ``folder``."""
    from rrhf.models.loading import load_tokenizer
    from rrhf.models.tiny import new_causal_lm

    tokenizer = load_tokenizer(str(tokenizer_dir))
    new_causal_lm(tokenizer, {"n_positions": 256, **architecture}, seed=0).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def last_turn_prompts(frame: pd.DataFrame) -> list[str]:
    """Each synthetic prompt cut to its last human turn: short, so sampling and scoring are fast, and still a
    request the synthetic gold reward grades."""
    return ["\n\nHuman: " + p.split("Human:")[-1].split("Assistant:")[0].strip() + "\n\nAssistant:"
            for p in frame["prompt"]]


def save_segment_reward_models(folder: Path, lm_dir: Path, mean: float = 0.0, std: float = 1.0) -> dict[str, str]:
    """Fine-grained RLHF's three reward models with untrained heads on the LM at ``lm_dir`` (relevance and
    factuality: two-label token classifiers; completeness: a one-label classifier whose metrics.json gives the
    ``mean`` and ``std`` it is normalised with); kind -> folder."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    from rrhf.io import write_json
    from rrhf.models.loading import load_tokenizer

    tokenizer = load_tokenizer(str(lm_dir), padding_side="right")
    paths = {}
    for kind, loader, labels in (("relevance", AutoModelForTokenClassification, 2),
                                 ("factuality", AutoModelForTokenClassification, 2),
                                 ("completeness", AutoModelForSequenceClassification, 1)):
        torch.manual_seed(len(kind))
        model = loader.from_pretrained(str(lm_dir), num_labels=labels)
        model.config.pad_token_id = tokenizer.pad_token_id
        paths[kind] = str(folder / kind)
        model.save_pretrained(paths[kind])
        tokenizer.save_pretrained(paths[kind])
    write_json({"mean": mean, "std": std}, folder / "completeness" / "metrics.json")
    return paths


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """A randomly initialised 1-layer GPT-2-style LM (with its tokenizer) saved with save_pretrained."""
    return save_new_lm(tmp_path_factory.mktemp("tiny_lm"), tokenizer_dir,
                       {"family": "gpt2", "n_layer": 1, "n_embd": 32, "n_head": 2})


@pytest.fixture(scope="session")
def tiny_reward_dir(tmp_path_factory, tiny_lm_dir) -> Path:
    """A one-label GPT-2 sequence classifier initialised from the tiny LM."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_lm_dir, num_labels=1)
    path = tmp_path_factory.mktemp("tiny_reward")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_lm_dir).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def workdir(tmp_path_factory):
    """A folder where real Snakemake has built the scored training sets of the instruct policy from nothing
    (tests/workflow_helpers.FAST_OVERRIDES). Shared by tests/workflow/test_workflow.py and
    tests/report/test_report.py."""
    path = tmp_path_factory.mktemp("workflow")
    run_snakemake(path, *(f"results/scored/instruct/{s}.parquet" for s in ("DP", "D", "P")),
                  overrides=FAST_OVERRIDES)
    return path


@pytest.fixture(scope="session")
def table_workdir(workdir, tmp_path_factory):
    """A copy of that folder, with Table 6 reduced to one row (Alpaca, DP) and built end to end; (folder,
    overrides)."""
    workdir = copy_of(workdir, tmp_path_factory, "table")
    tables = workdir / "tables.yaml"
    tables.write_text(yaml.safe_dump({"table6": [{"policy": "Alpaca", "setting": "DP"}],
                                      "table7": [{"policy": "Alpaca", "setting": "DP"}]}))
    overrides = {**FAST_OVERRIDES, "tables": str(tables), "findings": None}  # the claims need the full tables
    run_snakemake(workdir, "results/table6.csv", overrides=overrides)
    return workdir, overrides


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (tests/browser_driver.py), one per test module; the test is skipped without one."""
    from browser_driver import Browser

    from workflow_helpers import chromium

    with Browser(chromium()) as running:
        yield running
