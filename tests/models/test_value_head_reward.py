"""The GPT-J + value-head reward model (Dahoas/gptj-rm-static layout), on a tiny GPT-J built locally.

The checkpoint is written as Dahoas's hf_ckpt.pt is laid out: ``transformer.*``, ``v_head.weight``, the
wrapped causal LM's duplicate ``model.transformer.*`` / ``model.lm_head.*``, and the ``attn.bias`` /
``attn.masked_bias`` buffers that old transformers saved.
"""

import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers import GPTJConfig, GPTJForCausalLM, GPTJModel

from rrhf.models.loading import load_tokenizer
from rrhf.models.token_spans import encode_pair
from rrhf.models.value_head_reward import (
    CHECKPOINT_FILE,
    ValueHeadRewardModel,
    load_value_head_reward_model,
    reward_positions,
)
from rrhf.padding import pad_batch
from rrhf.scoring.rewards import score
from workflow_helpers import FAST_OVERRIDES, run_snakemake

N_POSITIONS = 64
TEXTS = [("Human: How do I bake bread? Assistant:", " Mix flour and water."),
         ("Human: Hi. Assistant:", " Hello!"),
         ("Human: What is the capital of France? Assistant:", " Paris, I think, is the capital.")]


def dahoas_layout(lm: GPTJForCausalLM, v_head: torch.Tensor) -> dict[str, torch.Tensor]:
    """A state dict shaped like hf_ckpt.pt: the reward model's keys, the wrapped LM's duplicates and the
    legacy causal-mask buffers (bias: bool tril (1, 1, P, P); masked_bias: -1e9) under both prefixes."""
    state = {f"transformer.{k}": v.clone() for k, v in lm.transformer.state_dict().items()}
    state.update({f"model.{k}": v.clone() for k, v in lm.state_dict().items()})
    state["v_head.weight"] = v_head.clone()
    mask = torch.tril(torch.ones(N_POSITIONS, N_POSITIONS, dtype=torch.bool)).view(1, 1, N_POSITIONS, N_POSITIONS)
    for prefix in ("transformer", "model.transformer"):
        for i in range(lm.config.n_layer):
            state[f"{prefix}.h.{i}.attn.bias"] = mask.clone()
            state[f"{prefix}.h.{i}.attn.masked_bias"] = torch.tensor(-1e9)
    return state


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory, tokenizer_dir) -> Path:
    """config.json of a tiny GPT-J (2 layers, hidden 32, 4 heads, rotary 8, 64 positions) and the tokenizer."""
    tokenizer = load_tokenizer(str(tokenizer_dir))
    config = GPTJConfig(n_layer=2, n_embd=32, n_head=4, rotary_dim=8, n_positions=N_POSITIONS,
                        vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    path = tmp_path_factory.mktemp("gptj_backbone")
    config.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def saved_state(backbone_dir) -> dict[str, torch.Tensor]:
    """The Dahoas-layout state dict of a random tiny GPT-J (seed 0) and value head."""
    torch.manual_seed(0)
    lm = GPTJForCausalLM(GPTJConfig.from_pretrained(backbone_dir))
    return dahoas_layout(lm, torch.randn(1, lm.config.n_embd))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, saved_state) -> Path:
    """``saved_state`` written with torch.save as <folder>/hf_ckpt.pt."""
    path = tmp_path_factory.mktemp("rm_ckpt") / CHECKPOINT_FILE
    torch.save(saved_state, path)
    return path


@pytest.fixture(scope="module")
def loaded(checkpoint, backbone_dir):
    """(model, tokenizer) loaded in float32."""
    return load_value_head_reward_model(str(checkpoint), str(backbone_dir))


def encoded_rows(tokenizer) -> list[list[int]]:
    """prompt + response + EOS ids of TEXTS, as the project encodes them."""
    return [encode_pair(tokenizer, p, r, N_POSITIONS)[0] for p, r in TEXTS]


def by_hand(saved_state: dict, config, ids: list[int]) -> torch.Tensor:
    """v_head(hidden state at the first EOS), with a separately built GPTJModel, unbatched and unmasked."""
    backbone = GPTJModel(config).eval()
    backbone.load_state_dict({k[len("transformer."):]: v for k, v in saved_state.items()
                              if k.startswith("transformer.") and not k.endswith(("attn.bias", "attn.masked_bias"))})
    with torch.no_grad():
        hidden = backbone(torch.tensor([ids])).last_hidden_state[0]
    # A row cut before its EOS (longer than the model allows) is read at its last token.
    first_eos = ids.index(config.eos_token_id) if config.eos_token_id in ids else len(ids) - 1
    return hidden[first_eos] @ saved_state["v_head.weight"][0]


def rewards(model, rows: list[list[int]], pad: int) -> torch.Tensor:
    """The model's (n,) rewards for right-padded ``rows``."""
    input_ids, attention_mask = pad_batch(rows, pad)
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_loads_exactly_the_saved_weights(checkpoint, backbone_dir, saved_state, dtype):
    model, tokenizer = load_value_head_reward_model(str(checkpoint), str(backbone_dir), dtype=dtype)
    assert isinstance(model, ValueHeadRewardModel)
    loaded_state = model.state_dict()
    assert set(loaded_state) == {k for k in saved_state
                                 if not k.startswith("model.") and not k.endswith(("attn.bias", "attn.masked_bias"))}
    for key, value in loaded_state.items():
        assert value.dtype == dtype, key
        assert torch.equal(value, saved_state[key].to(dtype)), key
    assert all(p.dtype == dtype and p.device.type == "cpu" for p in model.parameters())
    assert not any(m.training for m in model.modules())
    assert model.config.n_positions == N_POSITIONS
    assert tokenizer.pad_token_id == tokenizer.eos_token_id and tokenizer.padding_side == "right"
    assert torch.isfinite(rewards(model, encoded_rows(tokenizer), tokenizer.pad_token_id).float()).all()


def test_reward_is_v_head_at_first_eos(loaded, saved_state):
    model, tokenizer = loaded
    rows = encoded_rows(tokenizer)
    expected = torch.stack([by_hand(saved_state, model.config, ids) for ids in rows])
    torch.testing.assert_close(rewards(model, rows, tokenizer.pad_token_id), expected, atol=1e-5, rtol=1e-5)


def test_trlx_style_gather_agrees(loaded):
    """trlX/RRHF: v_head on every state, unmasked, gathered at argmax(input_ids == eos)."""
    model, tokenizer = loaded
    input_ids, attention_mask = pad_batch(encoded_rows(tokenizer), tokenizer.pad_token_id)
    with torch.no_grad():
        values = model.v_head(model.transformer(input_ids).last_hidden_state).squeeze(-1)
        ends = torch.argmax((input_ids == tokenizer.eos_token_id).float(), dim=1).view(-1, 1)
        trlx = torch.gather(values, 1, ends).squeeze(-1)
        ours = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, 0]
    torch.testing.assert_close(ours, trlx, atol=1e-5, rtol=1e-5)


def test_padding_and_what_follows_the_first_eos_do_not_matter(loaded):
    model, tokenizer = loaded
    rows, pad = encoded_rows(tokenizer), tokenizer.pad_token_id
    alone = torch.cat([rewards(model, [ids], pad) for ids in rows])
    torch.testing.assert_close(rewards(model, rows, pad), alone, atol=1e-5, rtol=1e-5)
    padded = rows + [[5] * 40]  # a much longer row: more EOS padding on the others
    torch.testing.assert_close(rewards(model, padded, pad)[:3], alone, atol=1e-5, rtol=1e-5)
    trailing = [ids + [7, 9, 11, pad, 13] for ids in rows]  # real tokens (mask 1) after the first EOS
    torch.testing.assert_close(rewards(model, trailing, pad), alone, atol=1e-5, rtol=1e-5)
    input_ids, _ = pad_batch(rows, pad)
    with torch.no_grad():
        unmasked = model(input_ids=input_ids).logits[:, 0]
    torch.testing.assert_close(unmasked, alone, atol=1e-5, rtol=1e-5)


def test_reward_positions():
    eos = 0
    input_ids = torch.tensor([[5, 6, 0, 0, 0], [5, 0, 7, 0, 0], [5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
    attention_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    assert reward_positions(input_ids, attention_mask, eos).tolist() == [2, 1, 2, 4]  # row 3: no real EOS
    assert reward_positions(input_ids, None, eos).tolist() == [2, 1, 3, 4]


def test_score_with_the_project_scorer(loaded, saved_state):
    model, tokenizer = loaded
    got = score(model, tokenizer, [p for p, _ in TEXTS], [r for _, r in TEXTS], batch_size=2, max_length=512)
    expected = [by_hand(saved_state, model.config, ids).item() for ids in encoded_rows(tokenizer)]
    assert got == pytest.approx(expected, abs=1e-5)


def test_packed_scoring_reads_each_response_at_its_first_eos(loaded, saved_state, caplog):
    """Two responses per prompt, packed after it: each reward equals the hand-computed one."""
    caplog.set_level("INFO", logger="rrhf")
    model, tokenizer = loaded
    prompts = [p for p, _ in TEXTS] * 2
    responses = [r for _, r in TEXTS] + [" No idea.", " Hey there, how are you?", " Lyon."]
    got = score(model, tokenizer, prompts, responses, batch_size=4, max_length=512, prompt_sharing="packed")
    assert "reward scoring: each prompt is computed once" in caplog.text
    expected = [by_hand(saved_state, model.config, encode_pair(tokenizer, p, r, N_POSITIONS)[0]).item()
                for p, r in zip(prompts, responses)]
    assert got == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("change", ["missing", "unexpected"])
def test_mismatched_checkpoint_raises_naming_the_key(tmp_path, backbone_dir, saved_state, change):
    state = dict(saved_state)
    if change == "missing":
        del state["transformer.h.1.mlp.fc_in.weight"]
        key = "transformer.h.1.mlp.fc_in.weight"
    else:
        key = "score_head.weight"
        state[key] = torch.zeros(1, 32)
    torch.save(state, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(ValueError, match=rf"{change} keys \['{key}'\]"):
        load_value_head_reward_model(str(tmp_path / CHECKPOINT_FILE), str(backbone_dir))


class Payload:
    """Unpickling this would write a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "unpickled")


def marker_function():
    """A plain function, pickled by reference."""


@pytest.mark.parametrize("kind", ["instance", "function"])
def test_pickled_objects_are_refused(tmp_path, backbone_dir, saved_state, kind):
    marker = tmp_path / "marker"
    payload = Payload(marker) if kind == "instance" else marker_function
    torch.save({**saved_state, "extra": payload}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(pickle.UnpicklingError, match="weights_only"):
        load_value_head_reward_model(str(tmp_path / CHECKPOINT_FILE), str(backbone_dir))
    assert not marker.exists()


def test_folder_and_safetensors_checkpoints(tmp_path, checkpoint, backbone_dir, saved_state, loaded):
    from safetensors.torch import save_file

    model, tokenizer = load_value_head_reward_model(str(checkpoint.parent), str(backbone_dir))
    rows = encoded_rows(tokenizer)
    reference = rewards(loaded[0], rows, tokenizer.pad_token_id)
    torch.testing.assert_close(rewards(model, rows, tokenizer.pad_token_id), reference, rtol=0, atol=0)
    save_file({k: v.contiguous() for k, v in saved_state.items()}, tmp_path / "rm.safetensors")
    model, _ = load_value_head_reward_model(str(tmp_path / "rm.safetensors"), str(backbone_dir))
    torch.testing.assert_close(rewards(model, rows, tokenizer.pad_token_id), reference, rtol=0, atol=0)
    with pytest.raises(FileNotFoundError, match=CHECKPOINT_FILE):
        load_value_head_reward_model(str(tmp_path), str(backbone_dir))


def test_hub_id_fetches_hf_ckpt(monkeypatch, checkpoint, backbone_dir):
    calls = []

    def fake_download(repo_id, filename, revision=None):
        calls.append((repo_id, filename, revision))
        return str(checkpoint)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    load_value_head_reward_model("Dahoas/gptj-rm-static@676bfd4d", str(backbone_dir))
    load_value_head_reward_model("Dahoas/gptj-rm-static", str(backbone_dir))
    assert calls == [("Dahoas/gptj-rm-static", CHECKPOINT_FILE, "676bfd4d"),
                     ("Dahoas/gptj-rm-static", CHECKPOINT_FILE, None)]


@pytest.mark.workflow
def test_the_workflow_scores_with_a_value_head_checkpoint(tmp_path, checkpoint, backbone_dir, saved_state):
    # The reward model entry as config/paper.yaml has it (format value_head_checkpoint + backbone), with the
    # tiny GPT-J in place of gptj-rm-static: scoring loads it through the config and reads the first EOS.
    overrides = {**FAST_OVERRIDES, "reward_model": "gptj_rm",
                 "models": {**FAST_OVERRIDES["models"],
                            "gptj_rm": {"display_name": "tiny gptj-rm", "path": str(checkpoint.parent),
                                        "format": "value_head_checkpoint", "backbone": str(backbone_dir)}}}
    run_snakemake(tmp_path, "results/rewards/provided.parquet", overrides=overrides)
    scored = pd.read_parquet(tmp_path / "results/rewards/provided.parquet")
    assert len(scored) == 2 * FAST_OVERRIDES["data"]["train_prompts"]
    model, tokenizer = load_value_head_reward_model(str(checkpoint), str(backbone_dir))
    for row in scored.head(4).itertuples():
        ids = encode_pair(tokenizer, row.prompt, row.response, N_POSITIONS)[0]  # the model's limit
        assert row.reward == pytest.approx(by_hand(saved_state, model.config, ids).item(), abs=1e-4)
    # As the paper's entry asks: a value-head model cannot be a policy.
    overrides["policies"] = {"LLaMA": "gptj_rm"}
    refused = run_snakemake(tmp_path, "-n", "results/rewards/provided.parquet", overrides=overrides, check=False)
    assert refused.returncode != 0 and "policies.LLaMA" in refused.stderr + refused.stdout
