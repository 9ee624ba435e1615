"""RRHF training on a real tiny model: the policy learns the reward order and the loss falls."""

import json

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from rrhf.batching.query_batches import build_examples, collate_queries, response_logprobs
from rrhf.evaluation.pair_accuracy import policy_rank_accuracy
from rrhf.io import read_provenance, write_parquet
from rrhf.models.loading import load_tokenizer
from rrhf.training.rrhf import train_rrhf
from scored_sets import scored_set

MAX_LENGTH = 128
TRAINING = {"epochs": 6, "learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.1, "max_length": MAX_LENGTH,
            "seed": 0}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_lm_dir, synthetic_frame):
    folder = tmp_path_factory.mktemp("rrhf")
    scored = scored_set(synthetic_frame, 24)
    write_parquet(scored, folder / "scored.parquet", {"stage": "test"})
    metrics = train_rrhf(str(tiny_lm_dir), str(folder / "scored.parquet"), str(folder / "model"),
                         {"training": TRAINING, "max_tokens_per_forward": 1024}, {})
    return folder, scored, metrics


def test_rank_accuracy_rises(trained, tiny_lm_dir):
    folder, scored, metrics = trained
    tokenizer = load_tokenizer(str(tiny_lm_dir), padding_side="right")
    before = policy_rank_accuracy(AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval(), tokenizer, scored,
                                  MAX_LENGTH)
    after = policy_rank_accuracy(AutoModelForCausalLM.from_pretrained(folder / "model").eval(), tokenizer, scored,
                                 MAX_LENGTH)
    assert after > before + 0.15, (before, after)
    assert metrics["rank_accuracy_last_epoch"] > metrics["rank_accuracy_first_epoch"]


def test_train_log_shows_the_loss_falling(trained):
    folder, _, metrics = trained
    log = pd.read_parquet(folder / "model" / "train_log.parquet")
    assert {"step", "epoch", "loss", "rank_loss", "ft_loss", "lr"} <= set(log.columns)
    assert log["step"].tolist() == list(range(1, len(log) + 1))
    assert log["loss"].tail(3).mean() < 0.9 * log["loss"].head(3).mean()
    assert log["lr"].max() == pytest.approx(TRAINING["learning_rate"], rel=0.05)  # warm-up reaches the peak
    assert log["lr"].iloc[-1] < log["lr"].max()  # then decays
    assert (log["loss"] - log["rank_loss"] - log["ft_loss"]).abs().max() < 1e-4  # rank_weight 1
    saved = json.loads((folder / "model" / "metrics.json").read_text())
    assert saved["steps"] == len(log) == metrics["steps"]
    assert read_provenance(folder / "model" / "train_log.parquet")["stage"] == "train_rrhf"
    assert (folder / "model" / "model.safetensors").exists()


def test_chunked_forward_equals_one_padded_forward(tiny_lm_dir, synthetic_frame):
    """Splitting a batch into length-sorted chunks must not change any log-probability."""
    tokenizer = load_tokenizer(str(tiny_lm_dir), padding_side="right")
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir).eval()
    examples = build_examples(scored_set(synthetic_frame, 6), tokenizer, MAX_LENGTH)
    whole = collate_queries(examples, tokenizer.pad_token_id, max_tokens_per_forward=1 << 20,
                            max_length_spread=float("inf"))
    chunked = collate_queries(examples, tokenizer.pad_token_id, max_tokens_per_forward=200)
    assert "input_ids_1" not in whole and "input_ids_3" in chunked
    for key in (k for k in chunked if k.startswith("attention_mask_")):
        lengths = chunked[key].sum(1)
        assert lengths.max() <= 1.2 * lengths.min()  # no chunk mixes short and long sequences
    padded_tokens = sum(chunked[k].numel() for k in chunked if k.startswith("input_ids_"))
    assert padded_tokens < whole["input_ids_0"].numel()
    with torch.no_grad():
        a, mask_a = response_logprobs(model, whole)
        b, mask_b = response_logprobs(model, chunked)
    assert torch.equal(mask_a, mask_b)
    assert torch.allclose(a, b, atol=1e-5)
    # Each response's mask covers its tokens and EOS exactly.
    first = examples[0]
    assert int(mask_a[0, 0].sum()) == len(first.responses[0])


def test_each_run_epochs_call_ends_with_an_optimiser_step():
    """With gradient accumulation, a call whose micro-batches do not fill the last group still steps on them,
    so nothing carries over into the next call (a PPO iteration, an online sampling round)."""
    from rrhf.config.blocks import Training
    from rrhf.training.loop import Trainer

    model = torch.nn.Linear(3, 1)
    params = Training.with_defaults(dict(learning_rate=0.1, batch_size=1, gradient_accumulation_steps=2,
                                         warmup_ratio=0.0, lr_schedule="constant", max_grad_norm=0.0))
    trainer = Trainer(model, params, {}, total_steps=4)
    examples = [torch.ones(3), 2 * torch.ones(3), 3 * torch.ones(3)]

    def compute_loss(module, batch):
        return module(batch["x"]).sum(), {}

    def collate(chunk):
        return {"x": torch.stack(chunk)}

    def optimiser_steps():
        return int(trainer.optimizer.optimizer.state[model.weight]["step"])

    rows = trainer.run_epochs(examples, [1, 1, 1], collate, compute_loss, 1, seed=0)
    assert len(rows) == 2 and optimiser_steps() == 2  # micro-batches 1+2 in one step, 3 alone in the second
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
    assert len(trainer.run_epochs(examples[:1], [1], collate, compute_loss, 1, seed=1)) == 1
    assert optimiser_steps() == 3


def test_reward_during_training_is_logged_at_intervals_and_changes_no_weight(tmp_path, tiny_lm_dir, tiny_reward_dir,
                                                                             synthetic_frame):
    from safetensors.torch import load_file

    # The gold reward is the one of the dataset the scored set's provenance records.
    write_parquet(scored_set(synthetic_frame, 8), tmp_path / "scored.parquet",
                  {"stage": "test", "dataset": {"source": "synthetic"}})
    training = {"epochs": 2, "learning_rate": 3e-3, "batch_size": 2, "max_length": MAX_LENGTH, "seed": 0}
    for name, monitor in (("plain", {}), ("monitored", {"every_steps": 3, "prompts": 4, "max_new_tokens": 6})):
        train_rrhf(str(tiny_lm_dir), str(tmp_path / "scored.parquet"), str(tmp_path / name),
                   {"training": training, "reward_during_training": monitor}, {}, reward_model=str(tiny_reward_dir))
    plain, monitored = (pd.read_parquet(tmp_path / name / "train_log.parquet") for name in ("plain", "monitored"))
    measured = monitored.dropna(subset=["reward"])
    assert measured["step"].tolist() == [3, 6, 8]  # every 3 steps and the last of 8
    assert measured["gold_reward"].between(-1, 1).all()
    assert "reward" not in plain.columns
    pd.testing.assert_frame_equal(plain, monitored.drop(columns=["reward", "gold_reward"]), check_exact=True)
    weights = [load_file(tmp_path / name / "model.safetensors") for name in ("plain", "monitored")]
    assert all(weights[0][key].equal(weights[1][key]) for key in weights[0])
