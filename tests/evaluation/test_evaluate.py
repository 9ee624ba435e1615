"""Evaluation: cutting at the next turn, perplexity against hand-computed values, and the good/bad rows."""

import json
import math

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from rrhf.evaluation.generations import (
    evaluate_best_of_n,
    evaluate_policy,
    evaluate_provided,
    pick_best,
    summarise_generations,
)
from rrhf.evaluation.perplexity import perplexity, response_nll
from rrhf.io import write_parquet
from rrhf.models.loading import load_tokenizer
from rrhf.statistics import mean_and_sem
from rrhf.text import cut_at_turn

SCORING = {"batch_size": 8, "max_length": 256}
ALL_PROMPTS = {"limit": None, "seed": 0, "key": "data.test_prompts"}
FOUR_PROMPTS = {"limit": 4, "seed": 0, "key": "data.test_prompts"}


@pytest.mark.parametrize("text, expected", [
    (" Sure, here you go.\n\nHuman: thanks\n\nAssistant: ok", " Sure, here you go."),
    (" Fine. Assistant: and more", " Fine."),
    (" No turn here.  ", " No turn here."),
    ("Human: straight away", ""),
    (" mentions human: in lower case", " mentions human: in lower case"),
])
def test_cut_at_turn(text, expected):
    assert cut_at_turn(text) == expected


def test_perplexity_is_token_weighted():
    assert perplexity([(2.0, 1), (4.0, 3)]) == pytest.approx(math.exp(6.0 / 4))
    assert math.isnan(perplexity([(0.0, 0)]))


@pytest.fixture(scope="module")
def uniform_lm_dir(tmp_path_factory, tiny_lm_dir):
    """The tiny LM with every weight zeroed: its logits are all 0, so each token has probability 1/V."""
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    path = tmp_path_factory.mktemp("uniform_lm")
    model.save_pretrained(path)
    load_tokenizer(str(tiny_lm_dir)).save_pretrained(path)
    return path


def test_uniform_model_has_perplexity_equal_to_vocabulary_size(uniform_lm_dir, synthetic_frame):
    model = AutoModelForCausalLM.from_pretrained(uniform_lm_dir).eval()
    tokenizer = load_tokenizer(str(uniform_lm_dir), padding_side="right")
    prompts, responses = list(synthetic_frame["prompt"].head(5)), list(synthetic_frame["chosen"].head(5))
    nll = response_nll(model, tokenizer, prompts, responses, batch_size=2)
    vocab = model.config.vocab_size
    for (value, count), response in zip(nll, responses):
        assert count == len(tokenizer(response, add_special_tokens=False)["input_ids"])  # response only, no EOS
        assert value == pytest.approx(count * math.log(vocab), rel=1e-5)
    assert perplexity(nll) == pytest.approx(vocab, rel=1e-4)


def test_response_nll_matches_a_hand_computed_sum(tiny_lm_dir, synthetic_frame):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tokenizer = load_tokenizer(str(tiny_lm_dir), padding_side="right")
    prompt, response = synthetic_frame["prompt"].iloc[0], synthetic_frame["chosen"].iloc[0]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + response_ids])).logits[0]
    logprobs = torch.log_softmax(logits, -1)
    expected = -sum(float(logprobs[len(prompt_ids) - 1 + t, token]) for t, token in enumerate(response_ids))
    # Batched with a much shorter pair, so padding is involved.
    (value, count), _ = response_nll(model, tokenizer, [prompt, "\n\nHuman: hi\n\nAssistant:"],
                                     [response, " Hi."])
    assert count == len(response_ids)
    assert value == pytest.approx(expected, rel=1e-4)


@pytest.fixture(scope="module")
def test_split(tmp_path_factory, synthetic_frame):
    frame = synthetic_frame.head(6).copy()
    frame.loc[0, "chosen"] = " Good answer.\n\nHuman: and then?\n\nAssistant: more"  # must be cut
    path = tmp_path_factory.mktemp("data") / "test.parquet"
    write_parquet(frame, path, {"stage": "test"})
    return path, frame


@pytest.mark.parametrize("source", ["chosen", "rejected"])
def test_provided_rows_evaluate_the_datasets_replies(tmp_path, test_split, tiny_reward_dir, uniform_lm_dir, source):
    path, frame = test_split
    metrics = evaluate_provided(str(path), source, str(tiny_reward_dir), str(uniform_lm_dir), str(tmp_path),
                                SCORING, ALL_PROMPTS)
    generations = pd.read_parquet(tmp_path / "generations.parquet")
    expected = {pid: cut_at_turn(text) for pid, text in zip(frame["prompt_id"], frame[source])}
    assert dict(zip(generations["prompt_id"], generations["response"])) == expected
    assert metrics == json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 6
    assert metrics["reward_mean"] == pytest.approx(generations["reward"].mean())
    assert metrics["ppl"] == pytest.approx(AutoModelForCausalLM.from_pretrained(uniform_lm_dir).config.vocab_size,
                                           rel=1e-4)
    with pytest.raises(ValueError, match="source"):
        evaluate_provided(str(path), "prompt", str(tiny_reward_dir), str(uniform_lm_dir), str(tmp_path / "x"),
                          SCORING, ALL_PROMPTS)


def test_evaluate_policy_generates_cuts_and_scores(tmp_path, test_split, tiny_lm_dir, tiny_reward_dir, uniform_lm_dir):
    path, _ = test_split
    decoding = {"method": "greedy", "max_new_tokens": 12, "batch_size": 4}
    metrics = evaluate_policy(str(tiny_lm_dir), str(path), str(tiny_reward_dir), str(uniform_lm_dir), str(tmp_path),
                              decoding, SCORING, FOUR_PROMPTS)
    generations = pd.read_parquet(tmp_path / "generations.parquet")
    assert len(generations) == metrics["n"] == 4
    assert {"prompt_id", "prompt", "raw_response", "response", "reward", "gold_reward", "nll", "n_tokens"} <= set(
        generations)
    assert all(response == cut_at_turn(raw) for response, raw in zip(generations["response"],
                                                                    generations["raw_response"]))
    assert math.isfinite(metrics["reward_mean"]) and metrics["ppl"] > 1
    assert {"reward_sem", "gold_reward_mean", "distinct_2", "repetition", "response_words"} <= set(metrics)


def test_summarise_generations_against_hand_computed_values():
    frame = pd.DataFrame({
        "response": [" First, a b c. Then d e.", " go go go go go", " Fine."],
        "reward": [1.0, 2.0, 6.0],
        "gold_reward": [0.5, float("nan"), -0.5],
        "nll": [4.0, 2.0, 0.0],
        "n_tokens": [6, 4, 0],
    })
    metrics = summarise_generations(frame)
    assert metrics["n"] == 3 and metrics["n_empty"] == 1
    assert metrics["reward_mean"] == pytest.approx(3.0)
    assert metrics["reward_sem"] == pytest.approx(math.sqrt(7.0) / math.sqrt(3))  # sample variance (4+1+9)/2
    assert metrics["gold_reward_mean"] == pytest.approx(0.0)  # the row without gold is left out
    assert metrics["gold_reward_sem"] == pytest.approx(math.sqrt(0.5) / math.sqrt(2))
    assert metrics["ppl"] == pytest.approx(math.exp(6.0 / 10))
    # distinct-2: 4/4, 1/4 ("go go" four times), no bigram -> 1
    assert metrics["distinct_2"] == pytest.approx((1 + 0.25 + 1) / 3)
    # repeated 3-grams: 0, 2 of 3 ("go go go" three times), 0
    assert metrics["repetition"] == pytest.approx((0 + 2 / 3 + 0) / 3)
    assert metrics["response_words"] == pytest.approx((7 + 5 + 1) / 3)
    assert metrics["response_tokens"] == pytest.approx(10 / 3)


def test_mean_and_sem_without_values():
    assert mean_and_sem(pd.Series([float("nan")] * 3)) == (None, None)
    assert mean_and_sem(pd.Series([2.0])) == (2.0, None)


def test_evaluation_reports_gold_only_where_the_dataset_has_it(tmp_path, tiny_lm_dir, tiny_reward_dir,
                                                                uniform_lm_dir):
    from rrhf.data.gold_reward import gold_reward

    bread = "\n\nHuman: How do I bake bread?\n\nAssistant:"
    frame = pd.DataFrame({"prompt_id": ["a", "b"], "prompt": [bread, bread],
                          "chosen": [" First, mix flour, yeast and salt for the bread. Finally, bake the loaf hot "
                                     "for thirty minutes.", " I can't help with that."],
                          "rejected": [" No.", " No."]})
    # Whether a gold reward grades the replies is read from the test data's provenance: the dataset it records.
    path, hh_path = tmp_path / "test.parquet", tmp_path / "hh_test.parquet"
    write_parquet(frame, path, {"stage": "test", "dataset": {"source": "synthetic"}})
    write_parquet(frame, hh_path, {"stage": "test", "dataset": {"source": "anthropic_jsonl"}})
    synthetic = evaluate_provided(str(path), "chosen", str(tiny_reward_dir), str(uniform_lm_dir),
                                  str(tmp_path / "synthetic"), SCORING, ALL_PROMPTS)
    expected = [gold_reward(bread, text) for text in frame["chosen"]]
    assert synthetic["gold_reward_mean"] == pytest.approx(sum(expected) / 2)
    generations = pd.read_parquet(tmp_path / "synthetic" / "generations.parquet")
    assert sorted(generations["gold_reward"]) == pytest.approx(sorted(expected))
    real = evaluate_provided(str(hh_path), "chosen", str(tiny_reward_dir), str(uniform_lm_dir),
                             str(tmp_path / "real"), SCORING, ALL_PROMPTS)
    assert real["gold_reward_mean"] is None and real["gold_reward_sem"] is None
    written = json.loads((tmp_path / "real" / "metrics.json").read_text())
    assert written["gold_reward_mean"] is None and written["reward_sem"] is not None


def test_best_of_n_picks_the_argmax_per_prompt():
    scored = pd.DataFrame({"prompt_id": [7, 7, 7, 3, 3, 3], "response_index": [0, 1, 2, 0, 1, 2],
                           "response": ["a", "b", "c", "d", "e", "f"], "reward": [0.1, 2.0, -1.0, 5.0, 5.0, 4.0]},
                          index=[10, 11, 12, 13, 14, 15])
    best = pick_best(scored)
    assert best["prompt_id"].tolist() == [7, 3]  # prompts in their first-seen order
    assert best["response"].tolist() == ["b", "d"]  # the maximum; the first one on a tie


def test_best_of_n_evaluation(tmp_path, test_split, tiny_lm_dir, tiny_reward_dir):
    path, _ = test_split
    sampling = {"top_p": 1.0, "temperature": 1.0, "max_new_tokens": 10, "seed": 0, "batch_size": 4}
    metrics = evaluate_best_of_n(str(tiny_lm_dir), str(path), str(tiny_reward_dir), str(tmp_path), 3, sampling,
                                 SCORING, FOUR_PROMPTS)
    samples = pd.read_parquet(tmp_path / "samples.parquet")
    kept = pd.read_parquet(tmp_path / "generations.parquet")
    assert len(samples) == 12 and samples.groupby("prompt_id").size().eq(3).all()
    assert len(kept) == metrics["n"] == 4
    best = samples.groupby("prompt_id")["reward"].max()
    assert kept.set_index("prompt_id")["reward"].to_dict() == best.to_dict()
    assert metrics["reward_mean"] == pytest.approx(best.mean())
    assert metrics["reward_mean"] >= metrics["sampled_reward_mean"]
    assert metrics["ppl"] is None and metrics["best_of"] == 3
    assert json.loads((tmp_path / "metrics.json").read_text())["ppl"] is None
