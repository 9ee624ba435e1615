"""Each prompt computed once: packed rows give the loss and gradients of separate sequences, on real tiny models."""

import logging
import random

import pandas as pd
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from rrhf.batching.prompt_sharing import block_attention_mask, cut_query, fill_batches, pack_row, sharing_decision
from rrhf.batching.query_batches import QueryExample, causal_lm_sharing_problem, collate_queries, response_logprobs
from rrhf.io import write_parquet
from rrhf.losses import rrhf_loss
from rrhf.models.token_spans import cut_pair
from rrhf.training.rrhf import train_rrhf
from scored_sets import scored_set

VOCABULARY = 97


def llama(attn_implementation: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCABULARY, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         attn_implementation=attn_implementation)
    return LlamaForCausalLM(config)


def gpt2(attn_implementation: str = "sdpa") -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCABULARY, n_embd=32, n_layer=2, n_head=4, n_positions=128, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, attn_implementation=attn_implementation)
    return GPT2LMHeadModel(config)


MODELS = {"llama-sdpa": lambda: llama(), "llama-eager": lambda: llama("eager"), "gpt2-sdpa": lambda: gpt2(),
          "gpt2-eager": lambda: gpt2("eager")}


def uneven_queries(seed: int = 0) -> list[QueryExample]:
    """Seven queries: prompts of 0 to 30 tokens, 1 to 6 responses of 1 to 25 tokens each, distinct rewards;
    two responses of one query start with the same token (one logit predicts both)."""
    rng = random.Random(seed)
    examples = []
    for b, prompt_length in enumerate([12, 0, 30, 5, 1, 19, 8]):
        prompt = [rng.randrange(2, VOCABULARY) for _ in range(prompt_length)]
        responses = [[rng.randrange(2, VOCABULARY) for _ in range(rng.randint(1, 25))]
                     for _ in range(1 + (b * 5) % 6)]
        if len(responses) > 2:
            responses[1][0] = responses[0][0]
        examples.append(QueryExample(prompt, responses, [rng.random() for _ in responses]))
    return examples


def loss_and_gradients(model, examples, packed: bool, logits_on_scored_only: bool = False, budget: int = 256):
    model.zero_grad()
    batch = collate_queries(examples, 0, budget, packed=packed, logits_on_scored_only=logits_on_scored_only)
    logprobs, mask = response_logprobs(model, batch)
    loss, _, _ = rrhf_loss(logprobs, mask, batch["rewards"], ft_reduction="sum")
    loss.backward()
    return logprobs.detach(), mask, loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("logits_on_scored_only", [False, True])
def test_packed_rows_give_the_loss_and_gradients_of_separate_sequences(name, logits_on_scored_only):
    model = MODELS[name]()
    examples = uneven_queries()
    separate = loss_and_gradients(model, examples, packed=False)
    packed = loss_and_gradients(model, examples, packed=True, logits_on_scored_only=logits_on_scored_only)
    assert torch.equal(separate[1], packed[1])  # the same tokens are scored
    assert int(separate[1].sum()) == sum(len(r) for e in examples for r in e.responses) - len(examples[1].responses)
    assert torch.allclose(separate[0], packed[0], atol=1e-5)
    assert torch.allclose(separate[2], packed[2], atol=1e-5, rtol=1e-6)
    assert separate[3].abs().max() > 0.1
    assert torch.allclose(separate[3], packed[3], atol=1e-5, rtol=1e-4)


def test_packing_computes_each_prompt_once():
    examples = uneven_queries()
    separate = collate_queries(examples, 0, 1 << 20, float("inf"))
    packed = collate_queries(examples, 0, 1 << 20, float("inf"), packed=True)
    assert separate["input_ids_0"].shape[0] == sum(len(e.responses) for e in examples)
    assert packed["input_ids_0"].shape[0] == len(examples)
    distinct = sum(len(e.prompt) + sum(len(r) for r in e.responses) for e in examples)
    assert int((packed["segments_0"] >= 0).sum()) == distinct
    assert int(separate["attention_mask_0"].sum()) == sum(len(s) for e in examples for s in e.sequences)


def test_packed_gradients_are_bitwise_repeatable():
    """One logit predicts the first token of every response; the backward pass must not accumulate into
    repeated indices, which the CPU does in a thread-dependent order."""
    model = llama()
    runs = [loss_and_gradients(model, uneven_queries(), packed=True, logits_on_scored_only=True) for _ in range(4)]
    assert all(torch.equal(run[3], runs[0][3]) for run in runs)


def test_packed_rows_with_gradient_checkpointing():
    model = llama()
    plain = loss_and_gradients(model, uneven_queries(), packed=False)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    checkpointed = loss_and_gradients(model, uneven_queries(), packed=True)
    assert torch.allclose(plain[3], checkpointed[3], atol=1e-5, rtol=1e-4)


def test_packed_rows_in_bfloat16():
    model = llama().to(torch.bfloat16)
    with torch.no_grad():
        separate, mask = response_logprobs(model, collate_queries(uneven_queries(), 0, 256))
        packed, packed_mask = response_logprobs(model, collate_queries(uneven_queries(), 0, 256, packed=True))
    assert torch.equal(mask, packed_mask)
    assert (separate - packed).abs().max() < 0.1  # bf16 rounding (8 bits of mantissa), not a wrong mask


def test_block_attention_mask_by_hand():
    row = pack_row([5, 6], [[7, 8], [9]])
    assert row.tokens == [7, 8, 9, 5, 6] and row.positions == [2, 3, 2, 0, 1] and row.segments == [1, 1, 2, 0, 0]
    assert row.offsets == [0, 2] and row.prompt_offset == 3 and row.index(1, 1) == 4 and row.index(2, 1) == 2
    segments, positions = torch.tensor([row.segments + [-1]]), torch.tensor([row.positions + [0]])
    expected = torch.tensor([[1, 0, 0, 1, 1, 0],   # response 1, token 0: the prompt and itself
                             [1, 1, 0, 1, 1, 0],   # response 1, token 1
                             [0, 0, 1, 1, 1, 0],   # response 2 sees the prompt and itself, not response 1
                             [0, 0, 0, 1, 0, 0],   # prompt token 0
                             [0, 0, 0, 1, 1, 0],   # prompt token 1
                             [0, 0, 0, 0, 0, 1]],  # padding sees only itself
                            dtype=torch.bool)
    assert torch.equal(block_attention_mask(segments, positions)[0, 0], expected)
    additive = block_attention_mask(segments, positions, "eager", torch.bfloat16)[0, 0]
    assert additive.dtype == torch.bfloat16
    assert torch.equal(additive == 0, expected) and additive.min() == torch.finfo(torch.bfloat16).min


def test_the_lm_head_runs_on_the_scored_columns_only():
    """A packed row keeps logits at the prompt's last token (it predicts every response's first token) and
    inside each response: sum(R_k) - K + 1 columns of its P + sum(R_k), none of the prompt's others."""
    query = uneven_queries()[2]  # a 30-token prompt, 5 responses
    batch = collate_queries([query], 0, 1 << 20, packed=True, logits_on_scored_only=True)
    responses = sum(len(r) for r in query.responses)
    assert len(batch["logits_to_keep_0"]) == responses - len(query.responses) + 1
    assert batch["input_ids_0"].shape[1] == responses + len(query.prompt) == responses + 30


@pytest.mark.parametrize("prompt, response, max_length", [(30, 10, 64), (60, 10, 64), (20, 80, 64), (90, 90, 64),
                                                            (0, 70, 64), (40, 24, 64)])
def test_cut_query_of_one_response_is_cut_pair(prompt, response, max_length):
    prompt_ids, response_ids = list(range(prompt)), list(range(100, 100 + response))
    ids, start = cut_pair(prompt_ids, response_ids, max_length)
    shared, (cut,) = cut_query(prompt_ids, [response_ids], max_length)
    assert (shared + cut, len(shared)) == (ids, start)


def test_cut_query_shares_one_prompt_that_every_response_fits_with():
    prompt = list(range(100))
    responses = [list(range(1000, 1000 + n)) for n in (10, 40, 90)]
    shared, cut = cut_query(prompt, responses, 128)
    assert shared == prompt[-(128 - 64):]  # the longest kept response (64 = 128 - 128 // 2) decides
    assert [len(r) for r in cut] == [10, 40, 64] and all(len(shared) + len(r) <= 128 for r in cut)
    assert cut_query(prompt[:20], responses[:2], 128) == (prompt[:20], responses[:2])  # it fits: no cut


def test_fill_batches():
    assert fill_batches([3, 3, 5, 1, 9, 2], 6) == [[0, 1], [2, 3], [4], [5]]


def test_probe_passes_real_models_and_catches_one_that_ignores_the_mask():
    assert causal_lm_sharing_problem(llama()) is None
    assert causal_lm_sharing_problem(gpt2("eager")) is None

    class IgnoresTheMask(GPT2LMHeadModel):
        """A real GPT-2 that drops the attention mask and position ids (as a model with its own masking would)."""

        def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
            return super().forward(input_ids=input_ids, **kwargs)

    ignoring = IgnoresTheMask(gpt2().config)
    assert "differ from separate sequences" in causal_lm_sharing_problem(ignoring)
    other = gpt2()
    other.config._attn_implementation = "flash_attention_2"
    assert "takes no 4D attention mask" in causal_lm_sharing_problem(other)


def test_sharing_decision_by_mode(caplog):
    caplog.set_level(logging.INFO, logger="rrhf")
    assert sharing_decision("auto", "rrhf.prompt_sharing", lambda: None, "RRHF training")
    assert not sharing_decision("separate", "rrhf.prompt_sharing", lambda: None, "RRHF training")
    assert not sharing_decision("auto", "rrhf.prompt_sharing", lambda: "no 4D mask", "RRHF training")
    assert "separate sequences, as the model cannot share prompts: no 4D mask" in caplog.text
    with pytest.raises(ValueError, match=r"rrhf.prompt_sharing: packed, but .*no 4D mask"):
        sharing_decision("packed", "rrhf.prompt_sharing", lambda: "no 4D mask", "RRHF training")
    with pytest.raises(ValueError, match="rrhf.prompt_sharing: 'yes' is not one of"):
        sharing_decision("yes", "rrhf.prompt_sharing", lambda: None, "RRHF training")


@pytest.fixture(scope="module")
def llama_policy_dir(tmp_path_factory, tokenizer_dir):
    from conftest import save_new_lm

    return save_new_lm(tmp_path_factory.mktemp("llama_policy"), tokenizer_dir,
                       {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 4})


def test_train_rrhf_packed_and_separate_train_alike(tmp_path, llama_policy_dir, synthetic_frame, caplog):
    """A whole RRHF run (LLaMA-style, no dropout) logs the same losses either way, and its log says which."""
    caplog.set_level(logging.INFO, logger="rrhf")
    write_parquet(scored_set(synthetic_frame, 8), tmp_path / "scored.parquet", {"stage": "test"})
    training = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 4, "max_length": 64, "seed": 0}
    for mode in ("packed", "separate"):
        train_rrhf(str(llama_policy_dir), str(tmp_path / "scored.parquet"), str(tmp_path / mode),
                   {"training": training, "max_tokens_per_forward": 512, "prompt_sharing": mode}, {},
                   log_path=str(tmp_path / f"{mode}.log"))
    packed, separate = (pd.read_parquet(tmp_path / mode / "train_log.parquet") for mode in ("packed", "separate"))
    assert len(packed) == 4
    pd.testing.assert_frame_equal(packed, separate, rtol=1e-4)
    assert "each prompt is computed once" in (tmp_path / "packed.log").read_text()
    assert "each response runs as its own sequence" in (tmp_path / "separate.log").read_text()
