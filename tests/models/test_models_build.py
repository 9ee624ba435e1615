"""Tokenizer, LM pre-training, SFT and reward-model training on tiny real models."""

import json
import math

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rrhf.data.gold_reward import gold_reward
from rrhf.io import read_provenance, write_parquet
from rrhf.losses import bradley_terry_loss, pairwise_accuracy
from rrhf.models.loading import load_reward_model, load_tokenizer
from rrhf.models.tiny import (
    EOS_TOKEN,
    PAD_TOKEN,
    llama_intermediate_size,
    new_causal_lm,
    train_tokenizer,
    transcripts,
)
from rrhf.models.token_spans import encode_pair
from rrhf.scoring.rewards import score
from rrhf.training.language_model import IGNORE_INDEX, lm_examples, pretrain_lm, train_sft
from rrhf.training.reward_model import train_reward_model

ARCHITECTURE = {"family": "llama", "n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 256}
TRAINING = {"epochs": 3, "learning_rate": 3e-3, "batch_size": 16, "max_length": 96, "seed": 0}
LOG_COLUMNS = {"step", "epoch", "loss", "lr"}


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return load_tokenizer(str(tokenizer_dir), padding_side="right")


@pytest.fixture(scope="module")
def data(tmp_path_factory, synthetic_frame):
    """64 training pairs and 32 held-out pairs as Parquet files."""
    folder = tmp_path_factory.mktemp("lm_data")
    # prepare_dataset records the dataset, and with it the gold reward the reward model is checked against.
    provenance = {"stage": "test", "dataset": {"source": "synthetic"}}
    write_parquet(synthetic_frame.head(64), folder / "train.parquet", provenance)
    write_parquet(synthetic_frame.iloc[64:96], folder / "test.parquet", provenance)
    return folder / "train.parquet", folder / "test.parquet"


@pytest.fixture(scope="module")
def pretrained_dir(tmp_path_factory, tokenizer_dir, data):
    output = tmp_path_factory.mktemp("pretrain") / "model"
    pretrain_lm(str(tokenizer_dir), str(data[0]), str(output),
                {"kind": "pretrain", "dataset": "test", "architecture": ARCHITECTURE, "training": TRAINING}, {})
    return output


@pytest.fixture(scope="module")
def sft_dir(tmp_path_factory, pretrained_dir, data):
    output = tmp_path_factory.mktemp("sft") / "model"
    train_sft(str(pretrained_dir), str(data[0]), str(output), {"kind": "sft", "dataset": "test", "training": TRAINING},
              {})
    return output


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory, pretrained_dir, data):
    output = tmp_path_factory.mktemp("reward") / "model"
    metrics = train_reward_model(str(pretrained_dir), str(data[0]), str(data[1]), str(output),
                                 {"kind": "reward", "dataset": "test", "training": {**TRAINING, "epochs": 5}}, {})
    return output, metrics


def loss_falls(folder):
    log = pd.read_parquet(folder / "train_log.parquet")
    assert LOG_COLUMNS <= set(log.columns)
    assert list(log["step"]) == list(range(1, len(log) + 1))
    assert log["loss"].map(math.isfinite).all()
    losses = list(log["loss"])
    return sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


# --- tokenizer -----------------------------------------------------------------------------------

def test_train_tokenizer(synthetic_frame, tokenizer_dir):
    texts = transcripts(synthetic_frame.head(200))
    tok = train_tokenizer(texts, vocab_size=300)
    assert len(tok) <= 300
    assert tok.eos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    assert tok.eos_token_id != tok.pad_token_id
    text = synthetic_frame["prompt"].iloc[300] + synthetic_frame["rejected"].iloc[300]  # not in the training texts
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert len(ids) < len(text.encode())  # BPE merges learned something

    reloaded = load_tokenizer(str(tokenizer_dir))
    original = train_tokenizer(transcripts(synthetic_frame), vocab_size=400)  # how conftest built tokenizer_dir
    ids = reloaded(text, add_special_tokens=False)["input_ids"]
    assert ids == original(text, add_special_tokens=False)["input_ids"]
    assert (reloaded.eos_token_id, reloaded.pad_token_id) == (original.eos_token_id, original.pad_token_id)
    assert reloaded.padding_side == "left"


# --- encoding ------------------------------------------------------------------------------------

def test_lm_examples_mask_the_prompt(tokenizer, synthetic_frame):
    prompts, responses = list(synthetic_frame["prompt"][:8]), list(synthetic_frame["chosen"][:8])
    for (ids, labels), prompt, response in zip(lm_examples(tokenizer, prompts, responses, 512, False),
                                               prompts, responses):
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert len(ids) == len(labels) <= 512
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
        assert labels[n_prompt:] == ids[n_prompt:] and IGNORE_INDEX not in labels[n_prompt:]
        assert ids[-1] == tokenizer.eos_token_id
        assert tokenizer.decode(ids[n_prompt:-1]) == response
    full = lm_examples(tokenizer, prompts, responses, 512, loss_on_prompt=True)
    assert all(ids == labels for ids, labels in full)


def test_encode_pair_truncation(tokenizer):
    prompt = "\n\nHuman: " + " ".join(f"word{i}" for i in range(60)) + "\n\nAssistant:"
    response = " " + " ".join(f"reply{i}" for i in range(60))
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    ids, start = encode_pair(tokenizer, prompt, response, 10_000)
    assert (ids, start) == (p_ids + r_ids, len(p_ids))

    for max_length in (16, 33, 64):
        ids, start = encode_pair(tokenizer, prompt, response, max_length)
        assert len(ids) == max_length  # both parts are long, so the whole budget is used
        assert ids[:start] == p_ids[len(p_ids) - start:]  # the end of the prompt is kept
        assert ids[start:] == r_ids[:len(ids) - start]  # the start of the response is kept
        assert start >= max_length // 2 - 1 and len(ids) - start >= max_length // 2 - 1

    # A short prompt is kept whole; the response takes the rest.
    short = "\n\nHuman: hi\n\nAssistant:"
    ids, start = encode_pair(tokenizer, short, response, 20)
    assert ids[:start] == tokenizer(short, add_special_tokens=False)["input_ids"] and len(ids) == 20


# --- training stages -----------------------------------------------------------------------------

def test_pretrain_lm(pretrained_dir, tokenizer):
    assert (pretrained_dir / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(pretrained_dir)
    assert model.config.model_type == "llama"
    assert model.config.num_hidden_layers == 1 and model.config.hidden_size == 32
    assert model.config.vocab_size == len(tokenizer)
    assert AutoTokenizer.from_pretrained(pretrained_dir).eos_token_id == tokenizer.eos_token_id
    log = pd.read_parquet(pretrained_dir / "train_log.parquet")
    assert len(log) == 3 * math.ceil(128 / 16)  # 64 pairs -> 128 transcripts, 3 epochs
    assert read_provenance(pretrained_dir / "train_log.parquet")["stage"] == "pretrain_lm"
    assert loss_falls(pretrained_dir)
    assert not [p for p in pretrained_dir.parent.iterdir() if p.name.startswith(".")]


def test_train_sft(sft_dir, pretrained_dir):
    assert (sft_dir / "model.safetensors").exists()
    model = AutoModelForCausalLM.from_pretrained(sft_dir)
    before = AutoModelForCausalLM.from_pretrained(pretrained_dir)
    assert not torch.equal(model.get_input_embeddings().weight, before.get_input_embeddings().weight)
    assert len(pd.read_parquet(sft_dir / "train_log.parquet")) == 3 * math.ceil(64 / 16)
    assert read_provenance(sft_dir / "train_log.parquet")["stage"] == "train_sft"
    assert loss_falls(sft_dir)


def test_train_reward_model(reward_dir, data):
    folder, metrics = reward_dir
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved == metrics
    assert 0.0 <= saved["test_accuracy"] <= 1.0
    assert saved["test_pairs"] == len(pd.read_parquet(data[1])) == 32
    test = pd.read_parquet(data[1])
    gold = [(gold_reward(p, c), gold_reward(p, r)) for p, c, r in zip(test["prompt"], test["chosen"], test["rejected"])]
    assert saved["test_gold_pairs"] == sum(c != r for c, r in gold)
    assert saved["test_label_gold_agreement"] == pytest.approx(sum(c > r for c, r in gold) / saved["test_gold_pairs"])
    assert 0.0 <= saved["test_gold_accuracy"] <= 1.0
    assert loss_falls(folder)
    assert "accuracy" in pd.read_parquet(folder / "train_log.parquet").columns

    model, tokenizer = load_reward_model(str(folder))
    assert model.config.num_labels == 1
    train = pd.read_parquet(data[0])
    prompts = list(train["prompt"])
    chosen = score(model, tokenizer, prompts, list(train["chosen"]), max_length=96)
    rejected = score(model, tokenizer, prompts, list(train["rejected"]), max_length=96)
    # About 0.95 is typical for 5 epochs on these 64 pairs; 0.75 leaves a wide margin and is far above chance.
    assert pairwise_accuracy(chosen, rejected) >= 0.75


def test_new_causal_lm_families(tokenizer):
    sizes = {"n_layer": 2, "n_embd": 48, "n_head": 4, "n_positions": 64}
    llama = new_causal_lm(tokenizer, sizes, seed=0)  # LLaMA-style unless told otherwise
    assert llama.config.model_type == "llama" and llama.config.num_hidden_layers == 2
    assert llama.config.intermediate_size == llama_intermediate_size(48) == 128  # 8/3 * 48 = 128
    assert llama.config.max_position_embeddings == 64 and llama.config.tie_word_embeddings
    assert llama.config.pad_token_id == tokenizer.pad_token_id != llama.config.eos_token_id
    gpt2 = new_causal_lm(tokenizer, {**sizes, "family": "gpt2"}, seed=0)
    assert gpt2.config.model_type == "gpt2" and gpt2.config.n_layer == 2 and gpt2.config.n_positions == 64
    same = new_causal_lm(tokenizer, sizes, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(llama.parameters(), same.parameters()))  # seeded
    with pytest.raises(ValueError, match="family"):
        new_causal_lm(tokenizer, {**sizes, "family": "rnn"}, seed=0)


def test_load_reward_model_rejects_two_labels(tmp_path, tiny_lm_dir):
    from transformers import AutoModelForSequenceClassification

    AutoModelForSequenceClassification.from_pretrained(tiny_lm_dir, num_labels=2).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_lm_dir).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="2 labels"):
        load_reward_model(str(tmp_path))


# --- losses --------------------------------------------------------------------------------------

def test_bradley_terry_loss_by_hand():
    loss = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]))
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2  # mean of -log σ(1), -log σ(0)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    # Large margins stay finite and near zero / near the margin.
    assert bradley_terry_loss(torch.tensor([100.0]), torch.tensor([0.0])).item() == pytest.approx(0.0, abs=1e-6)
    assert bradley_terry_loss(torch.tensor([0.0]), torch.tensor([100.0])).item() == pytest.approx(100.0, rel=1e-6)


def test_pairwise_accuracy_counts_ties_as_wrong():
    assert pairwise_accuracy([1.0, 0.5, 2.0], [0.0, 0.5, 3.0]) == pytest.approx(1 / 3)
    assert pairwise_accuracy(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 0.0])) == 0.0
    assert pairwise_accuracy([2.0, 1.0], [1.0, 0.0]) == 1.0
