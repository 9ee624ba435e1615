"""Scoring and perplexity with each prompt computed once equal unshared scoring, on real tiny models."""

import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaForSequenceClassification

from rrhf.evaluation.pair_accuracy import reward_model_accuracy
from rrhf.evaluation.perplexity import response_nll
from rrhf.models.loading import load_reward_model, load_tokenizer
from rrhf.scoring.packed_rewards import reward_reader, reward_sharing_problem
from rrhf.scoring.rewards import score
from scored_sets import scored_set


@pytest.fixture(scope="module")
def llama_reward_dir(tmp_path_factory, tokenizer_dir):
    """A one-label LLaMA-style sequence classifier (the tiny default's reward model family)."""
    from conftest import save_new_lm

    lm = save_new_lm(tmp_path_factory.mktemp("llama_lm"), tokenizer_dir,
                     {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 4})
    torch.manual_seed(1)
    model = LlamaForSequenceClassification.from_pretrained(lm, num_labels=1)
    path = tmp_path_factory.mktemp("llama_reward")
    model.save_pretrained(path)
    load_tokenizer(str(lm)).save_pretrained(path)
    return path


def queries(frame, n_prompts: int = 10):
    """(prompts, responses): four responses each for ``n_prompts`` prompts, interleaved (not grouped), plus a
    prompt with one response."""
    scored = scored_set(frame, n_prompts).sample(frac=1.0, random_state=0)
    return list(scored["prompt"]) + [frame["prompt"].iloc[50]], list(scored["response"]) + [" Sure."]


@pytest.mark.parametrize("reward_dir", ["tiny_reward_dir", "llama_reward_dir"])
@pytest.mark.parametrize("max_length", [256, 40])
def test_packed_rewards_equal_separate_rewards(request, reward_dir, max_length, synthetic_frame, caplog):
    """Also when pairs of one prompt are cut to different lengths (max_length 40): each pair keeps its own cut."""
    caplog.set_level(logging.INFO, logger="rrhf")
    model, tokenizer = load_reward_model(str(request.getfixturevalue(reward_dir)))
    prompts, responses = queries(synthetic_frame)
    separate = score(model, tokenizer, prompts, responses, batch_size=8, max_length=max_length,
                     prompt_sharing="separate")
    packed = score(model, tokenizer, prompts, responses, batch_size=8, max_length=max_length,
                   prompt_sharing="packed")
    assert "reward scoring: each prompt is computed once" in caplog.text
    assert packed == pytest.approx(separate, abs=1e-5)
    assert len({round(r, 4) for r in separate}) > len(prompts) // 2  # rewards differ between responses


def test_packed_rewards_read_where_the_model_reads(llama_reward_dir):
    """A decoder classifier reads the last token that is not padding; the reader finds the same hidden state."""
    model, tokenizer = load_reward_model(str(llama_reward_dir))
    reader = reward_reader(model)
    assert reader.head is model.score and reader.backbone is model.base_model
    pad = tokenizer.pad_token_id
    assert reader.position([5, 6, 7]) == 2 and reader.position([5, pad, 7, pad]) == 2


def test_a_model_whose_head_is_unknown_scores_separately(tiny_lm_dir, tokenizer_dir):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    assert "not a decoder sequence classifier" in reward_sharing_problem(model, load_tokenizer(str(tokenizer_dir)))


def test_reward_model_accuracy_scores_both_replies_of_a_pair_together(tiny_reward_dir, synthetic_frame):
    model, tokenizer = load_reward_model(str(tiny_reward_dir))
    test = synthetic_frame.head(24)
    chosen = score(model, tokenizer, list(test["prompt"]), list(test["chosen"]), prompt_sharing="separate")
    rejected = score(model, tokenizer, list(test["prompt"]), list(test["rejected"]), prompt_sharing="separate")
    expected = sum(c > r for c, r in zip(chosen, rejected)) / len(test)
    # the same pairs counted: equal up to float32 rounding of the share
    assert reward_model_accuracy(model, tokenizer, test, 8, 256, "packed") == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("max_length", [256, 30])
def test_packed_perplexity_equals_separate_perplexity(tiny_lm_dir, synthetic_frame, max_length):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    tokenizer = load_tokenizer(str(tiny_lm_dir), padding_side="right")
    prompts, responses = queries(synthetic_frame)
    prompts, responses = prompts + [prompts[0]], responses + [""]  # an empty response: no tokens, NLL 0
    separate = response_nll(model, tokenizer, prompts, responses, max_length, batch_size=6, prompt_sharing="separate")
    packed = response_nll(model, tokenizer, prompts, responses, max_length, batch_size=6, prompt_sharing="packed")
    assert [count for _, count in packed] == [count for _, count in separate]
    assert separate[-1] == (0.0, 0) == packed[-1]
    assert [value for value, _ in packed] == pytest.approx([value for value, _ in separate], rel=1e-5)
