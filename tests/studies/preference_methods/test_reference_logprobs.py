"""The cached reference log-probabilities (rrhf.studies.preference_methods.reference_logprobs): every reply's summed
log-probability
under rho, equal to a plain forward pass of prompt + reply, the same whether prompts are packed or not."""

import pandas as pd
import pytest
import torch
from conftest import save_new_lm

from rrhf.batching.query_batches import encode_query
from rrhf.io import read_provenance, write_parquet
from rrhf.models.loading import load_causal_lm
from rrhf.studies.preference_methods.reference_logprobs import REFERENCE_COLUMNS, compute_reference_logprobs
from scored_sets import scored_set

SETTINGS = {"max_length": 96, "max_tokens_per_forward": 4096, "batch_size": 3}


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory, tokenizer_dir):
    return save_new_lm(tmp_path_factory.mktemp("llama"), tokenizer_dir,
                       {"family": "llama", "n_layer": 1, "n_embd": 32, "n_head": 2})


def plain_logprob(model, tokenizer, prompt: str, replies: list[str], k: int) -> tuple[float, int]:
    """Reply k's summed log-probability from one forward pass of prompt + reply (cut as training cuts it)."""
    prompt_ids, reply_ids = encode_query(tokenizer, prompt, replies, SETTINGS["max_length"])
    ids = torch.tensor([prompt_ids + reply_ids[k]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    targets = ids[0, 1:]
    picked = logprobs.gather(-1, targets[:, None])[:, 0][len(prompt_ids) - 1:]
    return float(picked.sum()), len(reply_ids[k])


def test_reference_logprobs_equal_a_plain_forward_pass_packed_or_not(tmp_path, synthetic_frame, llama_dir):
    scored = scored_set(synthetic_frame, 5)
    write_parquet(scored.sample(frac=1, random_state=0), tmp_path / "scored.parquet", {"stage": "test"})
    frames = {mode: compute_reference_logprobs(str(llama_dir), str(tmp_path / "scored.parquet"),
                                               str(tmp_path / f"{mode}.parquet"), {**SETTINGS, "prompt_sharing": mode},
                                               "cpu")
              for mode in ("separate", "packed")}
    separate, packed = frames["separate"], frames["packed"]
    assert list(separate.columns) == REFERENCE_COLUMNS and len(separate) == len(scored) == 20
    assert list(zip(separate["prompt_id"], separate["response_index"])) == sorted(
        zip(scored["prompt_id"], scored["response_index"]))
    assert torch.allclose(torch.tensor(separate["reference_logp"].values),
                          torch.tensor(packed["reference_logp"].values), atol=1e-4)
    assert separate["n_tokens"].equals(packed["n_tokens"]) and (separate["reference_logp"] < 0).all()

    model, tokenizer = load_causal_lm(str(llama_dir))
    by_key = separate.set_index(["prompt_id", "response_index"])
    for prompt_id, group in list(scored.groupby("prompt_id"))[:2]:
        group = group.sort_values("response_index")
        for k in range(len(group)):
            expected, count = plain_logprob(model, tokenizer, group["prompt"].iloc[0], list(group["response"]), k)
            got = by_key.loc[(prompt_id, int(group["response_index"].iloc[k]))]
            assert got["reference_logp"] == pytest.approx(expected, abs=1e-4) and got["n_tokens"] == count
    saved = pd.read_parquet(tmp_path / "packed.parquet")
    assert saved.equals(packed) and read_provenance(tmp_path / "packed.parquet")["reference"] == str(llama_dir)
