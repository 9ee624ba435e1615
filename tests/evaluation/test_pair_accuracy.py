"""Table 5's accuracy on hand-made pairs, against scores computed independently of the library."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from rrhf.evaluation.pair_accuracy import pair_accuracy
from rrhf.io import read_json, write_parquet


def normalised_logprob(model, tokenizer, prompt, reply):
    """Mean log-probability of the reply's tokens and EOS after the prompt, from one plain forward pass."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + reply_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    picked = logprobs[range(len(prompt_ids) - 1, ids.shape[1] - 1), reply_ids]
    return float(picked.mean())


@pytest.fixture(scope="module")
def pairs(tmp_path_factory, synthetic_frame):
    """Six test pairs; in the last, chosen and rejected are the same reply (a tie, which counts as wrong)."""
    frame = synthetic_frame.head(6).copy()
    frame.loc[frame.index[-1], "rejected"] = frame.loc[frame.index[-1], "chosen"]
    path = tmp_path_factory.mktemp("pairs") / "test.parquet"
    write_parquet(frame, path, {"stage": "test"})
    return path, frame


def test_policy_accuracy_counts_pairs_its_normalised_logprob_orders_right(tmp_path, pairs, tiny_lm_dir):
    path, frame = pairs
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    expected = sum(normalised_logprob(model, tokenizer, p, c) > normalised_logprob(model, tokenizer, p, r)
                   for p, c, r in zip(frame["prompt"], frame["chosen"], frame["rejected"])) / len(frame)
    result = pair_accuracy(str(path), "policy", str(tiny_lm_dir), str(tmp_path / "a.json"),
                           {"batch_size": 4, "max_length": 256}, length_penalty=1.0)
    assert result == read_json(tmp_path / "a.json")
    assert result["pairs"] == 6
    assert result["accuracy"] == pytest.approx(expected)
    assert result["accuracy"] <= 5 / 6  # the tie is never right


def test_reward_model_accuracy_counts_pairs_it_scores_higher(tmp_path, pairs, tiny_reward_dir):
    path, frame = pairs
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_reward_dir)

    def reward(prompt, reply):
        ids = tokenizer(prompt + reply, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        with torch.no_grad():
            return float(model(torch.tensor([ids])).logits[0, 0])

    expected = sum(reward(p, c) > reward(p, r) for p, c, r in
                   zip(frame["prompt"], frame["chosen"], frame["rejected"])) / len(frame)
    result = pair_accuracy(str(path), "reward_model", str(tiny_reward_dir), str(tmp_path / "r.json"),
                           {"batch_size": 4, "max_length": 256}, length_penalty=1.0)
    assert result["accuracy"] == pytest.approx(expected)
    assert result["accuracy"] <= 5 / 6


def test_unknown_scorer_is_an_error(tmp_path, pairs, tiny_lm_dir):
    with pytest.raises(ValueError, match="scorer"):
        pair_accuracy(str(pairs[0]), "judge", str(tiny_lm_dir), str(tmp_path / "x.json"),
                      {"batch_size": 4, "max_length": 256}, 1.0)
    assert not (tmp_path / "x.json").exists()
