"""training.layers_trained: only the top blocks (and what follows them) train, in every trainer of the one loop;
what a CPU can afford at a real size (config/real.yaml)."""

import copy

import pytest
import torch
import yaml
from conftest import save_new_lm
from transformers import AutoModelForSequenceClassification

from rrhf.models.loading import load_causal_lm_for_training, load_tokenizer
from rrhf.models.value_head_policy import decoder_blocks
from rrhf.plan.plan import Plan
from rrhf.studies.registry import STUDIES
from rrhf.training.language_model import collate_lm, lm_examples, lm_loss
from rrhf.training.loop import train_model
from workflow_helpers import REPO

TRAINING = {"epochs": 1, "learning_rate": 1e-2, "batch_size": 4, "warmup_ratio": 0.0, "max_length": 64, "seed": 0}
PRECISION = {"mixed_precision": "no"}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, tokenizer_dir):
    """A two-block LLaMA with its output head tied to its embeddings, as SmolLM2's."""
    return save_new_lm(tmp_path_factory.mktemp("llama"), tokenizer_dir,
                       {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 128})


def changed(before: dict[str, torch.Tensor], model: torch.nn.Module) -> set[str]:
    return {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}


def test_only_the_top_blocks_and_the_final_norm_train(llama_dir, synthetic_frame):
    model, tokenizer = load_causal_lm_for_training(str(llama_dir))
    frame = synthetic_frame.head(16)
    examples = lm_examples(tokenizer, list(frame["prompt"]), list(frame["chosen"]), 64, False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    blocks = decoder_blocks(model)
    assert len(blocks) >= 2
    result = train_model(model, examples, [len(ids) for ids, _ in examples],
                         lambda batch: collate_lm(batch, tokenizer.pad_token_id), lm_loss,
                         {**TRAINING, "layers_trained": 1}, PRECISION)
    moved = changed(before, result.plain_model)
    top = f"model.layers.{len(blocks) - 1}."
    assert moved and all(name.startswith(top) or name.startswith("model.norm") for name in moved), moved
    assert any(name.startswith(top) for name in moved) and "model.norm.weight" in moved
    # The embeddings (and the output head tied to them) and every lower block stay as they were.
    assert not any(name.startswith("model.embed_tokens") or name.startswith("model.layers.0.") for name in moved)


def test_without_it_every_block_trains(llama_dir, synthetic_frame):
    model, tokenizer = load_causal_lm_for_training(str(llama_dir))
    frame = synthetic_frame.head(16)
    examples = lm_examples(tokenizer, list(frame["prompt"]), list(frame["chosen"]), 64, False)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    result = train_model(model, examples, [len(ids) for ids, _ in examples],
                         lambda batch: collate_lm(batch, tokenizer.pad_token_id), lm_loss, TRAINING, PRECISION)
    assert any(name.startswith("model.layers.0.") for name in changed(before, result.plain_model))


def test_a_reward_model_trains_its_head_and_top_block(llama_dir):
    model = AutoModelForSequenceClassification.from_pretrained(llama_dir, num_labels=1)
    tokenizer = load_tokenizer(str(llama_dir), padding_side="right")
    model.config.pad_token_id = tokenizer.pad_token_id
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    ids = [tokenizer("a reply", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]] * 4

    def loss(model, batch):
        return -model(input_ids=batch["input_ids"]).logits.mean(), {}

    result = train_model(model, ids, [len(i) for i in ids], lambda b: {"input_ids": torch.tensor(b)}, loss,
                         {**TRAINING, "layers_trained": 1}, PRECISION)
    moved = changed(before, result.plain_model)
    assert "score.weight" in moved
    assert not any(name.startswith("model.layers.0.") or name.startswith("model.embed_tokens") for name in moved)


def test_more_layers_than_the_model_has_is_named(llama_dir, synthetic_frame):
    model, tokenizer = load_causal_lm_for_training(str(llama_dir))
    examples = lm_examples(tokenizer, list(synthetic_frame["prompt"][:4]), list(synthetic_frame["chosen"][:4]), 64,
                           False)
    with pytest.raises(ValueError, match="training.layers_trained is 99; the model has"):
        train_model(model, examples, [len(ids) for ids, _ in examples],
                    lambda batch: collate_lm(batch, tokenizer.pad_token_id), lm_loss,
                    {**TRAINING, "layers_trained": 99}, PRECISION)


def test_ppo_keeps_its_own_key():
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["ppo"]["training"]["layers_trained"] = 2
    with pytest.raises(ValueError, match="ppo.training.layers_trained: PPO trains its top layers by "
                                         "ppo.num_layers_unfrozen"):
        Plan.from_config(config, REPO, STUDIES)


def test_a_reward_model_can_keep_the_bottom_blocks_of_its_init(tmp_path, llama_dir, synthetic_frame):
    from rrhf.models.loading import load_reward_model
    from rrhf.training.reward_model import train_reward_model

    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    synthetic_frame.head(16).to_parquet(train)
    synthetic_frame.tail(8).to_parquet(test)
    build = {"kind": "reward", "init": "llama", "dataset": "d", "backbone_layers": 1,
             "training": {**TRAINING, "layers_trained": 1}}
    train_reward_model(str(llama_dir), str(train), str(test), str(tmp_path / "reward"), build, PRECISION)
    model, _ = load_reward_model(str(tmp_path / "reward"))
    assert model.config.num_hidden_layers == 1 and len(decoder_blocks(model)) == 1
    # Its one block is the init's bottom block, trained; the embeddings are the init's, untouched.
    init = AutoModelForSequenceClassification.from_pretrained(llama_dir, num_labels=1)
    assert torch.equal(model.model.embed_tokens.weight, init.model.embed_tokens.weight)
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, init.model.layers[0].mlp.up_proj.weight)


def test_only_a_reward_build_keeps_fewer_blocks():
    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["models"]["instruct"]["build"]["backbone_layers"] = 1
    with pytest.raises(ValueError, match="models.instruct.build.backbone_layers: only a reward build"):
        Plan.from_config(config, REPO, STUDIES)
