"""Our group beam search against transformers 4.56.1's, and plain beam search against transformers 5's."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rrhf.sampling.diverse_beam import group_beam_search, hamming_penalty

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REFERENCE = json.loads((FIXTURES / "diverse_beam_reference.json").read_text())
EOS, PAD = 23, 0


@pytest.fixture(scope="module")
def model():
    return AutoModelForCausalLM.from_pretrained(FIXTURES / "diverse_beam_model").eval()


def left_pad(prompts):
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[PAD] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    return ids, mask


@pytest.mark.parametrize("record", REFERENCE["records"], ids=lambda r: f"{r['case']}-{len(r['prompts'])}prompts")
def test_matches_transformers_4_56_group_beam_search(model, record):
    ids, mask = left_pad(record["prompts"])
    case = record["case"]
    out = group_beam_search(model, ids, mask, eos_token_id=EOS, pad_token_id=PAD, **case)
    assert out.tolist() == record["sequences"]


def test_reference_has_finished_and_unfinished_beams():
    # The reference is only a strong check if some beams end early (EOS) and others run to the limit.
    lengths = {seq.count(EOS) for record in REFERENCE["records"] for seq in record["sequences"]}
    assert lengths == {0, 1}


def until_eos(row, prompt_len):
    generated = row[prompt_len:]
    return generated[: generated.index(EOS) + 1] if EOS in generated else generated


@pytest.mark.parametrize("prompt", [[5, 9, 17, 3], [22, 8], [11]])
def test_one_group_equals_transformers_beam_search(model, prompt):
    ids, mask = left_pad([prompt])
    ours = group_beam_search(model, ids, mask, num_beams=4, num_beam_groups=1, diversity_penalty=0.0,
                             max_new_tokens=12, num_return_sequences=4, eos_token_id=EOS, pad_token_id=PAD)
    theirs = model.generate(input_ids=ids, attention_mask=mask, num_beams=4, num_return_sequences=4, do_sample=False,
                            max_new_tokens=12, eos_token_id=EOS, pad_token_id=PAD)
    # transformers 5 fills after EOS with EOS, 4.x with padding: compare the tokens up to the first EOS.
    assert [until_eos(r, len(prompt)) for r in ours.tolist()] == [until_eos(r, len(prompt)) for r in theirs.tolist()]


def test_groups_differ_and_results_are_deterministic(model):
    ids, mask = left_pad([[5, 9, 17, 3], [22, 8]])
    kwargs = dict(num_beams=4, num_beam_groups=4, max_new_tokens=10, num_return_sequences=4,
                  eos_token_id=EOS, pad_token_id=PAD)
    first = group_beam_search(model, ids, mask, diversity_penalty=1.0, **kwargs)
    assert torch.equal(first, group_beam_search(model, ids, mask, diversity_penalty=1.0, **kwargs))
    # A penalty far above any log-prob gap forces every group onto a different first token.
    forced = group_beam_search(model, ids, mask, diversity_penalty=100.0, **kwargs)
    width = ids.shape[1]
    for prompt in range(2):
        assert len({row[width] for row in forced[prompt * 4:(prompt + 1) * 4].tolist()}) == 4
    # Without the penalty, four groups of one beam each are four greedy searches: all the same.
    same = group_beam_search(model, ids[:1], mask[:1], diversity_penalty=0.0, **kwargs)
    assert len({tuple(row) for row in same.tolist()}) == 1


def test_hamming_penalty_counts_earlier_groups_only():
    scores = torch.zeros(2, 5)  # batch 1, group of 2 beams, vocab 5
    step_tokens = torch.tensor([3, 3, 1, 0, 0, 0])  # 6 beams in 3 groups of 2; group 2 not yet chosen
    penalised = hamming_penalty(scores, step_tokens, group=2, group_size=2, num_beams=6, penalty=0.5)
    assert penalised[0].tolist() == [-0.5, -0.5, 0.0, -1.0, 0.0]  # tokens 3, 3, 1, 0 chosen before
    assert torch.equal(penalised[0], penalised[1])
    assert torch.equal(hamming_penalty(scores, step_tokens, 0, 2, 6, 0.5), scores)
