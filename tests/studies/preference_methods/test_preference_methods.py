"""The preference methods in the one training loop (rrhf.studies.preference_methods.trainer) on a real tiny model: a
batch's loss is the method's loss of plainly computed log-probabilities, and training raises the policy's
preference for the chosen replies."""

import json

import pandas as pd
import pytest
import torch

from rrhf.batching.query_batches import build_examples, collate_queries
from rrhf.io import write_parquet
from rrhf.losses import dpo_loss, kto_loss, kto_reference_point, simpo_loss
from rrhf.models.loading import load_causal_lm
from rrhf.studies.preference_methods.examples import method_examples
from rrhf.studies.preference_methods.reference_logprobs import compute_reference_logprobs
from rrhf.studies.preference_methods.trainer import (
    METHODS,
    attach_references,
    make_method_loss,
    train_preference_method,
)
from scored_sets import scored_set

MAX_LENGTH = 128
TRAINING = {"epochs": 4, "learning_rate": 3e-3, "batch_size": 4, "warmup_ratio": 0.1, "max_length": MAX_LENGTH,
            "seed": 0}
HYPER = {"DPO": {"beta": 0.5}, "SimPO": {"beta": 2.0, "gamma": 0.5},
         "KTO": {"beta": 0.5, "desirable_weight": 1.0, "undesirable_weight": 1.0}}


def examples_and_references(folder, tiny_lm_dir, synthetic_frame, data):
    frame = method_examples(scored_set(synthetic_frame, 12), data, "best_worst", "prompt_mean")
    write_parquet(frame, folder / f"{data}.parquet", {"stage": "test"})
    compute_reference_logprobs(str(tiny_lm_dir), str(folder / f"{data}.parquet"), str(folder / f"{data}_ref.parquet"),
                               {"max_length": MAX_LENGTH, "max_tokens_per_forward": 4096, "batch_size": 8,
                                "prompt_sharing": "separate"}, "cpu")
    return frame, pd.read_parquet(folder / f"{data}_ref.parquet")


def plain_logps(model, tokenizer, example) -> torch.Tensor:
    """(K,) summed log-probability of each reply of a QueryExample by one plain forward pass each."""
    values = []
    for reply in example.responses:
        ids = torch.tensor([example.prompt + reply])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        values.append(logprobs.gather(-1, ids[0, 1:, None])[len(example.prompt) - 1:, 0].sum())
    return torch.stack(values)


@pytest.mark.parametrize("method", ["DPO", "SimPO", "KTO"])
def test_a_batch_loss_is_the_methods_loss_of_plain_log_probabilities(tmp_path, tiny_lm_dir, synthetic_frame, method):
    frame, reference = examples_and_references(tmp_path, tiny_lm_dir, synthetic_frame, METHODS[method].data)
    model, tokenizer = load_causal_lm(str(tiny_lm_dir))
    examples = build_examples(frame, tokenizer, MAX_LENGTH)[:5]
    attach_references(examples, frame, reference, "test")
    batch = collate_queries(examples, tokenizer.pad_token_id, 4096)
    with torch.no_grad():
        loss, logged = make_method_loss(method, HYPER[method])(model, batch)
        logps = torch.stack([plain_logps(model, tokenizer, example) for example in examples])
    rho = torch.tensor([example.references for example in examples])
    lengths = torch.tensor([[len(reply) for reply in example.responses] for example in examples])
    if method == "DPO":
        expected = dpo_loss(logps[:, 0], logps[:, 1], rho[:, 0], rho[:, 1], 0.5)
        # the policy is rho here: every log-ratio is 0 and the loss log 2
        assert float(loss) == pytest.approx(float(torch.log(torch.tensor(2.0))), abs=1e-4)
    elif method == "SimPO":
        expected = simpo_loss(logps[:, 0], logps[:, 1], lengths[:, 0], lengths[:, 1], 2.0, 0.5)
    else:
        desirable = torch.tensor([example.rewards[0] > 0.5 for example in examples])
        expected = kto_loss(logps[:, 0], rho[:, 0], desirable, kto_reference_point(logps[:, 1], rho[:, 1]), 0.5)
    assert float(loss) == pytest.approx(float(expected.mean()), abs=1e-4)
    assert ("preference_accuracy" in logged) == (method != "KTO")


def test_dpo_training_raises_the_chosen_replies_log_ratio(tmp_path, tiny_lm_dir, synthetic_frame):
    frame, reference = examples_and_references(tmp_path, tiny_lm_dir, synthetic_frame, "pairs")
    metrics = train_preference_method(str(tiny_lm_dir), str(tmp_path / "pairs.parquet"),
                                      str(tmp_path / "pairs_ref.parquet"), str(tmp_path / "model"), "DPO",
                                      HYPER["DPO"], {"training": TRAINING, "max_tokens_per_forward": 1024}, {})
    assert metrics["examples"] == 12 and metrics["steps"] == 12  # 12 pairs, batch 4, 4 epochs
    log = pd.read_parquet(tmp_path / "model" / "train_log.parquet")
    assert log["loss"].iloc[-3:].mean() < log["loss"].iloc[:3].mean()
    assert log["preference_accuracy"].iloc[-3:].mean() > log["preference_accuracy"].iloc[:3].mean()
    assert json.loads((tmp_path / "model" / "metrics.json").read_text())["method"] == "DPO"
    model, tokenizer = load_causal_lm(str(tmp_path / "model"))
    examples = build_examples(frame, tokenizer, MAX_LENGTH)
    attach_references(examples, frame, reference, "test")
    with torch.no_grad():
        ratios = torch.stack([plain_logps(model, tokenizer, e) - torch.tensor(e.references) for e in examples])
    assert float((ratios[:, 0] - ratios[:, 1]).mean()) > 0.5  # rho's margin is 0


def test_a_method_needing_the_reference_without_it_is_refused(tmp_path, tiny_lm_dir, synthetic_frame):
    frame = method_examples(scored_set(synthetic_frame, 4), "pairs", "best_worst", "prompt_mean")
    write_parquet(frame, tmp_path / "pairs.parquet", {"stage": "test"})
    with pytest.raises(ValueError, match="DPO compares with the reference model"):
        train_preference_method(str(tiny_lm_dir), str(tmp_path / "pairs.parquet"), None, str(tmp_path / "m"), "DPO",
                                HYPER["DPO"], {"training": TRAINING}, {})
    assert not (tmp_path / "m").exists()
