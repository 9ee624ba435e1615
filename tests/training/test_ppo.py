"""PPO's pieces against hand-computed values, its models, and a short real run on tiny local models."""

import math

import pandas as pd
import pytest
import torch
from conftest import save_new_lm

from rrhf.losses import policy_loss, value_loss
from rrhf.training.ppo_parts import (
    AdaptiveKLController,
    FixedKLController,
    RunningMoments,
    advantages_and_returns,
    scale_scores,
    sequence_kl,
    token_rewards,
    whiten,
)


def test_gae_by_hand_with_padding():
    # Row 0: two actions; row 1: one action then padding (whose values and rewards must be ignored).
    values = torch.tensor([[1.0, 2.0, 0.0], [4.0, 9.0, 9.0]])
    rewards = torch.tensor([[0.0, 1.0, 0.0], [2.0, 7.0, 7.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    advantages, returns = advantages_and_returns(values, rewards, mask, gamma=1.0, lam=0.5)
    # Row 0: delta_1 = 1 - 2 = -1 -> A_1 = -1; delta_0 = 0 + 2 - 1 = 1 -> A_0 = 1 + 0.5 * -1 = 0.5.
    # Row 1: delta_0 = 2 + 0 - 4 = -2.
    assert torch.allclose(advantages, torch.tensor([[0.5, -1.0, 0.0], [-2.0, 0.0, 0.0]]))
    assert torch.allclose(returns, torch.tensor([[1.5, 1.0, 0.0], [2.0, 0.0, 0.0]]))


def test_gae_with_gamma_discounts_the_next_value():
    values, rewards = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 1.0]])
    advantages, _ = advantages_and_returns(values, rewards, torch.ones(1, 2, dtype=torch.bool), gamma=0.5, lam=1.0)
    # A_1 = 1 - 2 = -1; A_0 = (0 + 0.5 * 2 - 1) + 0.5 * 1 * -1 = -0.5.
    assert torch.allclose(advantages, torch.tensor([[-0.5, -1.0]]))


def test_whiten_ignores_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert torch.allclose(whiten(values, mask), torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-6)
    assert torch.allclose(whiten(values, mask, shift_mean=False), torch.tensor([[1.0, 2.0, 3.0, 0.0]]), atol=1e-6)


def test_clipped_surrogate_by_hand():
    old = torch.zeros(1, 3)
    logprobs = torch.log(torch.tensor([[1.5, 0.5, 7.0]]))  # ratios 1.5, 0.5; the third token is padding
    advantages = torch.tensor([[1.0, 1.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    loss, clip_fraction, approx_kl = policy_loss(logprobs, old, advantages, mask, cliprange=0.2)
    # ratio 1.5 with A = 1: max(-1.5, -1.2) = -1.2 (clipped); ratio 0.5: max(-0.5, -0.8) = -0.5 (not clipped).
    assert float(loss) == pytest.approx((-1.2 - 0.5) / 2)
    assert clip_fraction == pytest.approx(0.5)
    assert approx_kl == pytest.approx(((0.5 - math.log(1.5)) + (-0.5 - math.log(0.5))) / 2)


def test_clipped_value_loss_by_hand():
    values = torch.tensor([[2.0, 1.5]])
    old = torch.tensor([[1.0, 1.0]])
    returns = torch.tensor([[1.5, 2.0]])
    loss, clip_fraction = value_loss(values, old, returns, torch.ones(1, 2, dtype=torch.bool), cliprange_value=0.2)
    # Token 0: unclipped (2 - 1.5)^2 = 0.25, clipped (1.2 - 1.5)^2 = 0.09 -> 0.25.
    # Token 1: unclipped (1.5 - 2)^2 = 0.25, clipped (1.2 - 2)^2 = 0.64 -> 0.64 (the clipped one).
    assert float(loss) == pytest.approx(0.5 * (0.25 + 0.64) / 2)
    assert clip_fraction == pytest.approx(0.5)


def test_losses_pass_gradients_only_through_real_tokens():
    logprobs = torch.zeros(1, 2, requires_grad=True)
    loss, _, _ = policy_loss(logprobs, torch.zeros(1, 2), torch.ones(1, 2), torch.tensor([[True, False]]))
    loss.backward()
    assert logprobs.grad[0, 1] == 0 and logprobs.grad[0, 0] != 0


def test_token_rewards_put_the_score_on_the_last_action():
    logprobs = torch.tensor([[-1.0, -2.0, 0.0], [-1.0, 0.0, 0.0]])
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    rewards = token_rewards(logprobs, ref, mask, torch.tensor([3.0, -2.0]), kl_coef=0.1)
    assert torch.allclose(rewards, torch.tensor([[-0.05, 3.1, 0.0], [-2.0, 0.0, 0.0]]))


def test_sequence_kl_is_the_k3_estimator_summed():
    logprobs, ref = torch.tensor([[-1.0, -2.0, 5.0]]), torch.tensor([[-1.5, -1.0, 0.0]])
    kl = sequence_kl(logprobs, ref, torch.tensor([[True, True, False]]))
    # d = 0.5 and -1: (exp(-0.5) - 1 + 0.5) + (exp(1) - 1 - 1); the padded token is ignored.
    assert float(kl[0]) == pytest.approx((math.exp(-0.5) - 0.5) + (math.exp(1.0) - 2.0))


def test_sequence_kl_estimates_the_true_kl():
    torch.manual_seed(0)
    policy = torch.log_softmax(torch.randn(6), -1)
    reference = torch.log_softmax(torch.randn(6), -1)
    exact = float((policy.exp() * (policy - reference)).sum())
    actions = torch.multinomial(policy.exp(), 200000, replacement=True)
    estimates = sequence_kl(policy[actions].unsqueeze(1), reference[actions].unsqueeze(1),
                            torch.ones(len(actions), 1, dtype=torch.bool))
    assert float(estimates.mean()) == pytest.approx(exact, rel=0.02)


def test_adaptive_kl_controller_moves_towards_the_target():
    controller = AdaptiveKLController(0.05, target=6, horizon=10000)
    controller.update(12.0, n_steps=4)  # error clipped at +0.2
    assert controller.value == pytest.approx(0.05 * (1 + 0.2 * 4 / 10000))
    before = controller.value
    controller.update(6.0, n_steps=4)
    assert controller.value == pytest.approx(before)
    controller.update(6.6, n_steps=100)  # error 0.1, not clipped
    assert controller.value == pytest.approx(before * (1 + 0.1 * 100 / 10000))
    controller.update(0.0, n_steps=10000)  # error clipped at -0.2
    assert controller.value == pytest.approx(before * (1 + 0.1 * 100 / 10000) * 0.8)
    fixed = FixedKLController(0.1)
    fixed.update(100.0, n_steps=10000)
    assert fixed.value == 0.1


def test_running_moments_match_the_whole_stream():
    moments = RunningMoments()
    assert moments.update(torch.tensor([1.0, 2.0, 3.0])) == pytest.approx((2.0, 1.0))
    moments.update(torch.tensor([4.0, 5.0]))
    assert moments.mean == pytest.approx(3.0)
    assert moments.std == pytest.approx(math.sqrt(2.5))  # unbiased std of 1..5


def test_scores_are_clipped_then_scaled_by_the_running_std():
    moments = RunningMoments()
    scaled = scale_scores(torch.tensor([20.0, -20.0, 0.0]), moments, "running", clip=10)
    assert torch.allclose(scaled, torch.tensor([1.0, -1.0, 0.0]))  # clipped to 10, -10, 0 whose std is 10
    raw = scale_scores(torch.tensor([20.0]), RunningMoments(), "none", clip=None)
    assert float(raw[0]) == 20.0
    with pytest.raises(ValueError, match="scale_reward"):
        scale_scores(torch.tensor([1.0, 2.0]), RunningMoments(), "ref", clip=None)


@pytest.fixture(scope="module")
def two_layer_lm_dir(tmp_path_factory, tokenizer_dir):
    """A 2-layer LLaMA-style LM saved with its tokenizer."""
    return save_new_lm(tmp_path_factory.mktemp("two_layer_lm"), tokenizer_dir,
                       {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 2})


@pytest.mark.parametrize("unfrozen", [None, 1])
def test_reference_stays_rho_while_the_policy_trains(two_layer_lm_dir, unfrozen):
    from rrhf.models.loading import load_causal_lm
    from rrhf.models.value_head_policy import CausalLMWithValueHead, FrozenReference, freeze_bottom_layers

    lm, _ = load_causal_lm(str(two_layer_lm_dir))
    rho, _ = load_causal_lm(str(two_layer_lm_dir))
    freeze_bottom_layers(lm, unfrozen)
    reference = FrozenReference(lm)
    total = sum(p.numel() for p in lm.parameters())
    trained = [p for p in lm.parameters() if p.requires_grad]
    assert reference.parameter_count == sum(p.numel() for p in trained)
    if unfrozen is None:
        assert reference.parameter_count == total
    else:  # one block and the final norm: the embeddings and the lower block are shared
        assert reference.parameter_count < total / 2
        assert not lm.get_input_embeddings().weight.requires_grad
        assert not lm.model.layers[0].self_attn.q_proj.weight.requires_grad
        assert lm.model.layers[1].self_attn.q_proj.weight.requires_grad
    with torch.no_grad():
        for p in trained:
            p.add_(0.5 * torch.randn_like(p))
    ids = torch.tensor([[5, 17, 42, 8, 99]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = rho(input_ids=ids, attention_mask=mask).logits
        changed = lm(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(changed, expected, atol=1e-3)
    assert torch.allclose(reference.logits(CausalLMWithValueHead(lm), ids, mask), expected, atol=1e-5)


def test_too_many_unfrozen_layers_is_an_error(two_layer_lm_dir):
    from rrhf.models.loading import load_causal_lm
    from rrhf.models.value_head_policy import freeze_bottom_layers

    lm, _ = load_causal_lm(str(two_layer_lm_dir))
    with pytest.raises(ValueError, match="num_layers_unfrozen is 3; the model has 2 layers"):
        freeze_bottom_layers(lm, 3)


def test_value_head_is_saved_apart_and_the_policy_loads_as_a_plain_lm(two_layer_lm_dir, tmp_path):
    from safetensors.torch import load_file

    from rrhf.models.loading import load_causal_lm
    from rrhf.models.value_head_policy import VALUE_HEAD_FILE, CausalLMWithValueHead

    lm, tokenizer = load_causal_lm(str(two_layer_lm_dir))
    tokenizer.save_pretrained(tmp_path)
    model = CausalLMWithValueHead(lm)
    ids = torch.tensor([[5, 17, 42]])
    logits, values = model(ids, torch.ones_like(ids))
    assert logits.shape == (1, 3, lm.config.vocab_size) and values.shape == (1, 3)
    model.save_pretrained(tmp_path)
    reloaded, _ = load_causal_lm(str(tmp_path))
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, logits, atol=1e-5)
    head = load_file(str(tmp_path / VALUE_HEAD_FILE))
    assert torch.equal(head["2.weight"], model.value_head[2].weight)


TINY_PPO = {
    "num_rollouts": 48, "chunk_size": 24, "ppo_epochs": 2, "total_steps": 60, "num_layers_unfrozen": None,
    "gamma": 1.0, "lam": 0.95, "cliprange": 0.2, "cliprange_value": 0.2, "vf_coef": 1.0,
    "kl": {"controller": "adaptive", "init_coef": 0.05, "target": 6, "horizon": 10000},
    "scale_reward": "running", "cliprange_reward": 10, "delta_reward": False,
    "generation": {"max_new_tokens": 8, "top_k": 0, "top_p": 1.0, "temperature": 1.0},
}


def short_prompts(frame: pd.DataFrame) -> list[str]:
    """Each synthetic prompt cut to its first two words, so the response is most of what the reward model reads."""
    return ["\n\nHuman: " + " ".join(p.split("Human:")[1].split()[:2]) + "\n\nAssistant:" for p in frame["prompt"]]


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory, synthetic_frame, tiny_lm_dir):
    """A short PPO run: a tiny random policy that ends its replies early now and then, against a reward model
    trained to prefer short replies, so a better policy is one logit (EOS) away."""
    from rrhf.io import write_parquet
    from rrhf.models.loading import load_causal_lm
    from rrhf.training.ppo import train_ppo
    from rrhf.training.reward_model import train_reward_model

    folder = tmp_path_factory.mktemp("ppo")
    frame = synthetic_frame.head(200).copy()
    frame["prompt"] = short_prompts(frame)
    words = [reply.split() for reply in frame["chosen"]]
    pairs = frame.assign(chosen=[" " + " ".join(w[:1]) for w in words], rejected=[" " + " ".join(w[:8]) for w in words])
    write_parquet(pairs.iloc[:160], folder / "pairs_train.parquet", {"stage": "test"})
    write_parquet(pairs.iloc[160:], folder / "pairs_test.parquet", {"stage": "test"})
    reward_metrics = train_reward_model(str(tiny_lm_dir), str(folder / "pairs_train.parquet"),
                                        str(folder / "pairs_test.parquet"), str(folder / "reward"),
                                        {"kind": "reward", "dataset": "test",
                                         "training": {"epochs": 2, "learning_rate": 3e-3, "batch_size": 16, "seed": 0}},
                                        {})
    assert reward_metrics["test_accuracy"] > 0.9

    policy, tokenizer = load_causal_lm(str(tiny_lm_dir))
    with torch.no_grad():  # EOS about one step in eight: replies of every length up to max_new_tokens
        ids = torch.tensor([tokenizer(frame["prompt"].iloc[0], add_special_tokens=False)["input_ids"]])
        hidden = policy(ids, output_hidden_states=True).hidden_states[-1][0].mean(0)
        policy.get_output_embeddings().weight[tokenizer.eos_token_id] += 4.0 * hidden / hidden.norm() ** 2
    policy.save_pretrained(folder / "policy")
    tokenizer.save_pretrained(folder / "policy")
    write_parquet(frame, folder / "train.parquet", {"stage": "test"})
    training = {"learning_rate": 3e-3, "batch_size": 12, "max_length": 96, "seed": 3, "warmup_ratio": 0.0,
                "lr_schedule": "constant"}
    metrics = train_ppo(str(folder / "policy"), str(folder / "reward"), str(folder / "train.parquet"),
                        str(folder / "model"), {**TINY_PPO, "training": training}, {},
                        {"limit": 48, "seed": 0, "key": "data.train_prompts"}, {})
    return folder, metrics, pd.read_parquet(folder / "model" / "train_log.parquet")


def test_ppo_raises_the_training_reward(ppo_run):
    _, metrics, log = ppo_run
    assert len(log) == metrics["iterations"] == 8  # 60 steps / (2 epochs x 4 minibatches)
    first, last = log["reward"].iloc[:2].mean(), log["reward"].iloc[-2:].mean()
    assert last > first + 0.5 * log["reward"].iloc[:2].abs().mean() + 0.1, log[["iteration", "reward", "kl"]]


def test_ppo_logs_every_iteration(ppo_run):
    _, _, log = ppo_run
    expected = {"iteration", "step", "reward", "score", "gold_reward", "kl", "kl_coef", "policy_loss", "value_loss",
                "clip_fraction", "value_clip_fraction", "approx_kl", "entropy", "response_length", "lr"}
    assert expected <= set(log.columns)
    numeric = log.drop(columns=["gold_reward"])
    assert numeric.apply(lambda column: column.map(math.isfinite)).all().all()
    assert (log["kl"] >= 0).all() and log["kl"].iloc[-1] > 0  # the policy has moved away from rho
    assert (log["kl_coef"] > 0).all() and log["kl_coef"].nunique() > 1  # the adaptive controller acted
    assert log["step"].tolist() == [8 * i for i in range(1, 9)]
    assert log["gold_reward"].isna().all()  # the training data records no dataset: no gold reward
    assert (log["response_length"] <= TINY_PPO["generation"]["max_new_tokens"] + 1).all()


def test_ppo_checkpoint_loads_as_a_policy(ppo_run):
    from rrhf.models.loading import load_causal_lm

    folder, _, _ = ppo_run
    trained, _ = load_causal_lm(str(folder / "model"))
    rho, _ = load_causal_lm(str(folder / "policy"))
    assert (folder / "model" / "value_head.safetensors").exists()
    changed = [not torch.equal(a, b) for a, b in zip(trained.parameters(), rho.parameters())]
    assert any(changed)
    assert pd.Series(changed).all()  # full fine-tuning: every tensor moved


def test_ppo_refuses_a_prompt_with_no_room_before_loading_anything(tmp_path):
    from rrhf.training.ppo import train_ppo

    ppo = {**TINY_PPO, "generation": {**TINY_PPO["generation"], "max_new_tokens": 96}}
    with pytest.raises(ValueError, match=r"ppo.training.max_length \(96\) must exceed"):
        train_ppo("no-such-policy", "no-such-reward", str(tmp_path / "missing.parquet"), str(tmp_path / "out"),
                  {**ppo, "training": {"max_length": 96}}, {}, {"limit": None, "seed": 0, "key": "data.train_prompts"},
                  {})
    assert not (tmp_path / "out").exists()
