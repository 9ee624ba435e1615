"""KL(pi || rho) of evaluated replies: token_kl against torch's own KL, response_kl on tiny local models (zero
against itself, invariant to batching, positive after a change, equal to an unbatched hand computation), and
evaluate_policy's kl_to_initial column and metrics."""

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from conftest import save_new_lm
from transformers import AutoModelForCausalLM

from rrhf.evaluation.divergence import response_kl, token_kl
from rrhf.evaluation.generations import evaluate_policy, summarise_generations
from rrhf.io import read_provenance, write_parquet
from rrhf.models.loading import load_tokenizer
from rrhf.models.tiny import train_tokenizer, transcripts
from rrhf.statistics import mean_and_sem

# ---------------------------------------------------------------------------------------------------------------
# token_kl


def torch_kl(policy_logits, reference_logits, mask) -> list[float]:
    """The same sums by torch.distributions, position by position in float64."""
    totals = []
    for b in range(mask.shape[0]):
        total = 0.0
        for t in range(mask.shape[1]):
            if mask[b, t]:
                p = torch.distributions.Categorical(logits=policy_logits[b, t].double())
                q = torch.distributions.Categorical(logits=reference_logits[b, t].double())
                total += float(torch.distributions.kl_divergence(p, q))
        totals.append(total)
    return totals


def test_token_kl_matches_torch_distributions_and_ignores_masked_positions():
    generator = torch.Generator().manual_seed(0)
    policy = torch.randn(3, 6, 7, generator=generator)
    reference = torch.randn(3, 6, 7, generator=generator)
    mask = torch.tensor([[0, 1, 1, 1, 0, 0],   # a prompt token, three reply tokens, padding
                         [0, 0, 0, 0, 0, 0],   # nothing scored: 0
                         [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    expected = torch_kl(policy, reference, mask)
    # Unmasked positions are never read: garbage there changes nothing.
    policy[~mask], reference[~mask] = float("nan"), float("inf")
    kl = token_kl(policy, reference, mask)
    assert kl.shape == (3,) and kl.dtype == torch.float32
    assert kl.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert kl[1] == 0 and kl[0] > 0 and kl[2] > kl[0]
    # And as F.kl_div writes it: kl_div(input=log rho, target=log pi, log_target=True) = sum pi (log pi - log rho).
    row = F.kl_div(torch.log_softmax(reference[0, 1:4], -1), torch.log_softmax(policy[0, 1:4], -1),
                   reduction="sum", log_target=True)
    assert float(kl[0]) == pytest.approx(float(row), rel=1e-5)


def test_token_kl_is_zero_for_equal_logits_nonnegative_and_takes_half_precision():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 5, 50, generator=generator) * 10
    mask = torch.rand(4, 5, generator=generator) > 0.3
    assert torch.equal(token_kl(logits, logits.clone(), mask), torch.zeros(4))
    # Nearly equal distributions: float rounding would give tiny negative terms; every term is clamped at 0.
    close = logits + 1e-7 * torch.randn(4, 5, 50, generator=generator)
    assert (token_kl(logits, close, mask) >= 0).all()
    other = torch.randn(4, 5, 50, generator=generator)
    half = token_kl(logits.bfloat16(), other.bfloat16(), mask)
    assert half.dtype == torch.float32
    assert torch.allclose(half, token_kl(logits.bfloat16().float(), other.bfloat16().float(), mask))
    with pytest.raises(ValueError, match="do not match"):
        token_kl(logits, other[:, :, :49], mask)


# ---------------------------------------------------------------------------------------------------------------
# response_kl on tiny models


def perturbed_copy(model_dir, folder, scale: float, seed: int = 0) -> str:
    """The model at ``model_dir`` with Gaussian noise of std ``scale`` added to every weight, saved in ``folder``."""
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder)
    load_tokenizer(str(model_dir)).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_pair(request, tmp_path_factory, tiny_lm_dir, tokenizer_dir):
    """(rho's folder, a perturbed pi's folder): the session's tiny GPT-2 LM, and a 2-layer LLaMA-style one
    (rotary positions)."""
    if request.param == "gpt2":
        rho = tiny_lm_dir
    else:
        rho = save_new_lm(tmp_path_factory.mktemp("llama_rho"), tokenizer_dir,
                          {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 4})
    return str(rho), perturbed_copy(rho, tmp_path_factory.mktemp(f"{request.param}_pi"), 0.1)


def load(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), load_tokenizer(path)


def pairs(frame, n=6):
    """n (prompt, reply) pairs of uneven lengths, one reply empty and one prompt repeated."""
    prompts, replies = list(frame["prompt"].head(n)), list(frame["chosen"].head(n))
    replies[2] = ""
    prompts[4] = prompts[3]
    return prompts, replies


def hand_response_kl(policy, reference, tokenizer, prompt: str | list[int], reply: str) -> float:
    """One unpadded sequence: the KL at the positions that predict each reply token, by torch.distributions."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"] if isinstance(prompt, str) else prompt
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + reply_ids])
    with torch.no_grad():
        pi, rho = policy(ids).logits, reference(ids).logits
    mask = torch.zeros(ids.shape, dtype=torch.bool)
    mask[0, len(prompt_ids) - 1: len(prompt_ids) + len(reply_ids) - 1] = True
    return torch_kl(pi, rho, mask)[0]


def test_a_model_against_itself_has_zero_kl(model_pair, synthetic_frame):
    rho_dir, _ = model_pair
    model, tokenizer = load(rho_dir)
    prompts, replies = pairs(synthetic_frame)
    values = response_kl(model, model, tokenizer, prompts, replies, max_length=256, batch_size=4)
    assert len(values) == 6
    assert values == pytest.approx([0.0] * 6, abs=1e-6)


def test_response_kl_matches_an_unbatched_hand_computation(model_pair, synthetic_frame):
    rho_dir, pi_dir = model_pair
    (reference, tokenizer), (policy, _) = load(rho_dir), load(pi_dir)
    prompts, replies = pairs(synthetic_frame)
    values = response_kl(policy, reference, tokenizer, prompts, replies, max_length=256, batch_size=4)
    expected = [hand_response_kl(policy, reference, tokenizer, p, r) for p, r in zip(prompts, replies)]
    assert values == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert values[2] == 0.0  # the empty reply
    assert all(value > 0 for i, value in enumerate(values) if i != 2)  # a changed model: positive KL
    # Summed over tokens: a reply that extends another has at least its KL.
    longer = response_kl(policy, reference, tokenizer, [prompts[0]] * 2, [replies[0], replies[0] + " And more."], 256)
    assert longer[1] > longer[0] == pytest.approx(values[0], rel=1e-4)


def test_response_kl_does_not_depend_on_batching_or_padding(model_pair, synthetic_frame):
    rho_dir, pi_dir = model_pair
    (reference, tokenizer), (policy, _) = load(rho_dir), load(pi_dir)
    prompts, replies = pairs(synthetic_frame)
    one = response_kl(policy, reference, tokenizer, prompts, replies, max_length=256, batch_size=1)
    four = response_kl(policy, reference, tokenizer, prompts, replies, max_length=256, batch_size=4)
    assert one == pytest.approx(four, rel=1e-4, abs=1e-6)
    assert any(value > 0 for value in one)


def test_response_kl_cuts_long_pairs_as_perplexity_does(model_pair, synthetic_frame):
    rho_dir, pi_dir = model_pair
    (reference, tokenizer), (policy, _) = load(rho_dir), load(pi_dir)
    prompt, reply = synthetic_frame["prompt"].iloc[0], " Sure, first mix the flour and the water."
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    limit = len(prompt_ids) + len(reply_ids) - 3  # the prompt loses its first 3 tokens
    assert len(prompt_ids) > 3 and len(reply_ids) <= limit // 2
    cut = response_kl(policy, reference, tokenizer, [prompt], [reply], max_length=limit)
    assert cut[0] == pytest.approx(hand_response_kl(policy, reference, tokenizer, prompt_ids[3:], reply), rel=1e-4)
    assert cut[0] != pytest.approx(hand_response_kl(policy, reference, tokenizer, prompt_ids, reply), rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# evaluate_policy: kl_to_initial


def test_summarise_generations_reports_the_kl_mean_and_its_standard_error():
    frame = pd.DataFrame({"response": [" a b", " c d", " e"], "reward": [1.0, 2.0, 3.0],
                          "gold_reward": [float("nan")] * 3, "kl_to_initial": [0.5, 1.5, 4.0]})
    metrics = summarise_generations(frame)
    assert metrics["kl_to_initial_mean"] == pytest.approx(2.0)
    assert metrics["kl_to_initial_sem"] == pytest.approx(mean_and_sem(frame["kl_to_initial"])[1])
    without = summarise_generations(frame.drop(columns="kl_to_initial"))
    assert without["kl_to_initial_mean"] is None and without["kl_to_initial_sem"] is None


@pytest.fixture(scope="module")
def test_data(tmp_path_factory, synthetic_frame):
    path = tmp_path_factory.mktemp("kl_data") / "test.parquet"
    write_parquet(synthetic_frame.head(4), path, {"stage": "test"})
    return str(path)


def test_evaluate_policy_reports_the_kl_to_its_initial_policy(tmp_path, test_data, tiny_lm_dir, tiny_reward_dir):
    rho = str(tiny_lm_dir)
    pi = perturbed_copy(rho, tmp_path / "pi", 0.1)
    decoding = {"method": "greedy", "max_new_tokens": 12, "batch_size": 4}
    scoring, prompts = {"batch_size": 8, "max_length": 256}, {"limit": None, "seed": 0, "key": "data.test_prompts"}
    metrics = evaluate_policy(pi, test_data, str(tiny_reward_dir), rho, str(tmp_path / "trained"), decoding,
                              scoring, prompts, device="cpu", initial_policy=rho)
    generations = pd.read_parquet(tmp_path / "trained" / "generations.parquet")
    (policy, tokenizer), (reference, _) = load(pi), load(rho)
    expected = response_kl(policy, reference, tokenizer, list(generations["prompt"]), list(generations["response"]),
                           256)
    assert generations["kl_to_initial"].tolist() == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert (generations["kl_to_initial"] > 0).any() and (generations["kl_to_initial"] >= 0).all()
    mean, sem = mean_and_sem(generations["kl_to_initial"])
    assert metrics["kl_to_initial_mean"] == pytest.approx(mean) and metrics["kl_to_initial_sem"] == pytest.approx(sem)
    assert json.loads((tmp_path / "trained" / "metrics.json").read_text()) == metrics
    assert read_provenance(tmp_path / "trained" / "generations.parquet")["initial_policy"] == rho

    # The untrained policy ("none") is its own initial policy: exactly 0, without a second model.
    untrained = evaluate_policy(rho, test_data, str(tiny_reward_dir), rho, str(tmp_path / "none"), decoding,
                                scoring, prompts, device="cpu", initial_policy=rho)
    assert pd.read_parquet(tmp_path / "none" / "generations.parquet")["kl_to_initial"].tolist() == [0.0] * 4
    assert untrained["kl_to_initial_mean"] == 0.0

    # Another vocabulary cannot be compared token by token.
    other_tokenizer = tmp_path / "other_tokenizer"
    train_tokenizer(transcripts(pd.read_parquet(test_data)), vocab_size=300).save_pretrained(other_tokenizer)
    other = save_new_lm(tmp_path / "other", other_tokenizer, {"family": "gpt2", "n_layer": 1, "n_embd": 32,
                                                             "n_head": 2})
    with pytest.raises(ValueError, match="different tokenizers"):
        evaluate_policy(pi, test_data, str(tiny_reward_dir), rho, str(tmp_path / "x"), decoding, scoring, prompts,
                        device="cpu", initial_policy=str(other))
