"""The pairwise reward-model build on two backbones built locally: a BERT-style encoder and a GPT-2 decoder.

An encoder's classifier pools its first token ([CLS]); a decoder's reads the
last real token (the EOS). Both must learn an easy preference, reload, and
score the same whatever the batching.
"""

import json

import pandas as pd
import pytest
import torch
from tokenizers import BertWordPieceTokenizer
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertTokenizerFast,
    GPT2ForSequenceClassification,
)

from rrhf.io import write_parquet
from rrhf.losses import pairwise_accuracy
from rrhf.models.loading import load_reward_model, load_tokenizer
from rrhf.models.tiny import transcripts
from rrhf.models.token_spans import cut_pair, encode_pair
from rrhf.scoring.rewards import encode_for_reward, score
from rrhf.training.reward_model import train_reward_model

TRAINING = {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16, "max_length": 96, "seed": 0}
CLASSES = {"bert": BertForSequenceClassification, "gpt2": GPT2ForSequenceClassification}


def marked(frame: pd.DataFrame) -> pd.DataFrame:
    """An easy preference: both replies share one text; the chosen opens with " Gladly.", the rejected with
    " Sadly."; which of the dataset's two replies is the shared text alternates by row."""
    base = [c if i % 2 else r for i, (c, r) in enumerate(zip(frame["chosen"], frame["rejected"]))]
    return frame.assign(chosen=[" Gladly." + b for b in base], rejected=[" Sadly." + b for b in base])


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, synthetic_frame):
    """(train, test) Parquet paths: 160 and 64 marked pairs with disjoint prompts."""
    folder = tmp_path_factory.mktemp("marked_pairs")
    frame = marked(synthetic_frame.head(224))
    write_parquet(frame.head(160), folder / "train.parquet", {"stage": "test"})
    write_parquet(frame.iloc[160:], folder / "test.parquet", {"stage": "test"})
    return folder / "train.parquet", folder / "test.parquet"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory, synthetic_frame):
    """A WordPiece tokenizer (lower-cased, vocab <= 600) and a random 2-layer BERT masked LM (hidden 32, 2 heads,
    128 positions) saved with save_pretrained."""
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(transcripts(marked(synthetic_frame)), vocab_size=600, min_frequency=2,
                                  show_progress=False)
    tokenizer = BertTokenizerFast(vocab=wordpiece.get_vocab())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id)
    path = tmp_path_factory.mktemp("tiny_bert")
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module", params=sorted(CLASSES))
def trained(request, tmp_path_factory, pairs):
    """(backbone name, saved reward-model folder, metrics) after train_reward_model on the marked pairs."""
    init = request.getfixturevalue({"bert": "bert_dir", "gpt2": "tiny_lm_dir"}[request.param])
    output = tmp_path_factory.mktemp(f"reward_{request.param}") / "model"
    metrics = train_reward_model(str(init), str(pairs[0]), str(pairs[1]), str(output),
                                 {"kind": "reward", "dataset": "test", "training": TRAINING}, {})
    return request.param, output, metrics


def test_reward_model_reloads_as_its_architecture_and_learns(trained, pairs):
    name, folder, metrics = trained
    model, tokenizer = load_reward_model(str(folder))
    assert type(model) is CLASSES[name]
    assert model.config.num_labels == 1 and not model.training
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert json.loads((folder / "metrics.json").read_text()) == metrics

    test = pd.read_parquet(pairs[1])
    prompts = list(test["prompt"])
    chosen = score(model, tokenizer, prompts, list(test["chosen"]), max_length=TRAINING["max_length"])
    rejected = score(model, tokenizer, prompts, list(test["rejected"]), max_length=TRAINING["max_length"])
    # The reloaded model and tokenizer score the held-out pairs as the trained one did before saving.
    assert pairwise_accuracy(chosen, rejected) == metrics["test_accuracy"]
    # Chance is 0.5; the marker makes the preference easy: BERT reaches 1.0, GPT-2 0.90-0.94 (seeds 0-2).
    assert metrics["test_accuracy"] >= 0.8
    train = pd.read_parquet(pairs[0])
    train_chosen = score(model, tokenizer, list(train["prompt"]), list(train["chosen"]), max_length=96)
    train_rejected = score(model, tokenizer, list(train["prompt"]), list(train["rejected"]), max_length=96)
    assert pairwise_accuracy(train_chosen, train_rejected) >= 0.9  # 0.98-1.0 measured


def test_score_is_independent_of_batching(trained, synthetic_frame):
    """Right padding must not move the pooled token: batches of 1 and of 8 (lengths far apart) agree."""
    _, folder, _ = trained
    model, tokenizer = load_reward_model(str(folder))
    rows = marked(synthetic_frame.iloc[300:314])
    prompts = list(rows["prompt"]) + ["\n\nHuman: hi\n\nAssistant:", "\n\nHuman: ok\n\nAssistant:"]
    responses = list(rows["rejected"]) + [" Gladly.", " Hello!"]
    alone = score(model, tokenizer, prompts, responses, batch_size=1, max_length=96)
    batched = score(model, tokenizer, prompts, responses, batch_size=8, max_length=96)
    assert batched == pytest.approx(alone, abs=1e-5)
    reversed_scores = score(model, tokenizer, prompts[::-1], responses[::-1], batch_size=8, max_length=96)
    assert reversed_scores[::-1] == pytest.approx(alone, abs=1e-5)
    assert len({round(r, 5) for r in alone}) > len(alone) // 2  # the rewards depend on the text


def test_an_encoder_cannot_share_prompts(trained, synthetic_frame, caplog):
    """[CLS] sees the whole input, so an encoder scores separately under auto and refuses packed; a decoder
    packs under auto. The rewards are the same either way."""
    caplog.set_level("INFO", logger="rrhf")
    name, folder, _ = trained
    model, tokenizer = load_reward_model(str(folder))
    rows = marked(synthetic_frame.iloc[300:306])
    prompts, responses = list(rows["prompt"]) * 2, list(rows["chosen"]) + list(rows["rejected"])
    auto = score(model, tokenizer, prompts, responses, max_length=96)
    separate = score(model, tokenizer, prompts, responses, max_length=96, prompt_sharing="separate")
    assert auto == pytest.approx(separate, abs=1e-5)
    if name == "bert":
        assert "as the model cannot share prompts: an encoder reads its [CLS] token" in caplog.text
        with pytest.raises(ValueError, match="scoring.prompt_sharing: packed, but the model cannot share"):
            score(model, tokenizer, prompts, responses, max_length=96, prompt_sharing="packed")
    else:
        assert "reward scoring: each prompt is computed once" in caplog.text


def test_score_is_the_logit_on_the_models_own_input(trained, synthetic_frame):
    """An encoder scores [CLS] text [SEP] (what its tokenizer makes of the joined text); a decoder the
    unchanged ``encode_pair`` ids, ending in EOS."""
    name, folder, _ = trained
    model, tokenizer = load_reward_model(str(folder))
    prompt, response = synthetic_frame["prompt"].iloc[320], " Gladly." + synthetic_frame["chosen"].iloc[320]
    ids = encode_for_reward(tokenizer, prompt, response, 10_000)
    if name == "bert":
        assert ids == tokenizer(prompt + response)["input_ids"]
        assert (ids[0], ids[-1]) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
    else:
        assert ids == encode_pair(tokenizer, prompt, response, 10_000)[0] and ids[-1] == tokenizer.eos_token_id
    with torch.no_grad():
        logit = model(input_ids=torch.tensor([ids])).logits[0, 0].item()
    assert score(model, tokenizer, [prompt], [response], max_length=10_000) == pytest.approx([logit], abs=1e-6)


def test_encoder_input_is_cut_within_max_length(bert_dir, synthetic_frame):
    """[CLS] and [SEP] stay; the prompt loses its start, the response keeps its start."""
    tokenizer = load_tokenizer(str(bert_dir), padding_side="right")
    prompt = "".join(synthetic_frame["prompt"].iloc[:4])
    response = " Gladly." + synthetic_frame["chosen"].iloc[0]
    for max_length in (16, 33, 64):
        ids = encode_for_reward(tokenizer, prompt, response, max_length)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        inner, start = cut_pair(prompt_ids, tokenizer(response, add_special_tokens=False)["input_ids"], max_length - 2)
        assert len(ids) == max_length and ids == [tokenizer.cls_token_id] + inner + [tokenizer.sep_token_id]
        assert inner[:start] == prompt_ids[len(prompt_ids) - start:]
        assert inner[start:] == tokenizer(response, add_special_tokens=False)["input_ids"][:len(inner) - start]


def test_decoder_input_is_unchanged(tokenizer_dir, synthetic_frame):
    """The project's BPE tokenizer has no [CLS]: reward inputs are exactly ``encode_pair``'s (EOS last)."""
    tokenizer = load_tokenizer(str(tokenizer_dir), padding_side="right")
    assert tokenizer.cls_token_id is None
    for prompt, response in zip(synthetic_frame["prompt"][:10], synthetic_frame["rejected"][:10]):
        for max_length in (24, 96, 10_000):
            assert encode_for_reward(tokenizer, prompt, response, max_length) == \
                encode_pair(tokenizer, prompt, response, max_length)[0]
