"""Sampling K responses per prompt from the tiny random LM."""

import pandas as pd
import pytest

from rrhf.data.preference_pairs import select_prompts
from rrhf.io import read_provenance, write_parquet
from rrhf.models.loading import load_causal_lm, load_tokenizer
from rrhf.sampling.generation import SAMPLE_COLUMNS, generate_responses, sample_responses

NEW = 8


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    return load_causal_lm(str(tiny_lm_dir))


@pytest.fixture(scope="module")
def prompts(synthetic_frame):
    """Prompts of very different lengths, deliberately not in length order."""
    frame = synthetic_frame
    return [
        frame["prompt"].iloc[1],
        "\n\nHuman: hi\n\nAssistant:",
        "".join(frame["prompt"].iloc[2:6]),  # a long multi-turn prompt
        "\n\nHuman: How do I bake bread?\n\nAssistant:",
        frame["prompt"].iloc[7],
    ]


def test_shapes(lm, prompts):
    model, tokenizer = lm
    out = generate_responses(model, tokenizer, prompts, "beam", num_responses=3, max_new_tokens=NEW, batch_size=2)
    assert len(out) == len(prompts)
    assert all(len(r) == 3 and all(isinstance(t, str) for t in r) for r in out)


def test_beam_order_does_not_depend_on_batching(lm, prompts):
    model, tokenizer = lm
    one = generate_responses(model, tokenizer, prompts, "beam", max_new_tokens=NEW, batch_size=1)
    three = generate_responses(model, tokenizer, prompts, "beam", max_new_tokens=NEW, batch_size=3)
    assert one == three
    # Batch size 1 keeps each prompt alone, so result i really belongs to prompt i ...
    alone = [generate_responses(model, tokenizer, [p], "beam", max_new_tokens=NEW)[0] for p in prompts[:2]]
    assert one[:2] == alone
    # ... and reversing the input reverses the output.
    assert generate_responses(model, tokenizer, prompts[::-1], "beam", max_new_tokens=NEW, batch_size=3) == three[::-1]


def test_beam_matches_transformers_generate(lm, prompts):
    model, tokenizer = lm
    for prompt in (prompts[1], prompts[2]):
        ours = generate_responses(model, tokenizer, [prompt], "beam", num_responses=4, num_beams=4,
                                  max_new_tokens=NEW)[0]
        encoded = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
        output = model.generate(**encoded, num_beams=4, num_return_sequences=4, do_sample=False,
                                max_new_tokens=NEW, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id)
        theirs = tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)
        assert ours == theirs


def test_top_p_is_seeded(lm, prompts):
    model, tokenizer = lm
    kwargs = dict(num_responses=4, max_new_tokens=NEW, top_p=0.95, temperature=1.0, batch_size=2)
    first = generate_responses(model, tokenizer, prompts, "top_p", seed=1, **kwargs)
    assert first == generate_responses(model, tokenizer, prompts, "top_p", seed=1, **kwargs)
    other = generate_responses(model, tokenizer, prompts, "top_p", seed=2, **kwargs)
    assert any(a != b for a, b in zip(first[0], other[0]))
    assert all(len(r) == 4 for r in first)


def test_diverse_beam(lm, prompts):
    model, tokenizer = lm
    kwargs = dict(num_responses=4, num_beams=4, num_beam_groups=4, max_new_tokens=NEW, batch_size=2)
    diverse = generate_responses(model, tokenizer, prompts[:3], "diverse_beam", diversity_penalty=1.0, **kwargs)
    assert [len(r) for r in diverse] == [4, 4, 4]
    # Four groups of one beam without a penalty are four copies of greedy decoding ...
    plain = generate_responses(model, tokenizer, prompts[:3], "diverse_beam", diversity_penalty=0.0, **kwargs)
    for prompt, responses in zip(prompts[:3], plain):
        encoded = tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
        greedy = model.generate(**encoded, do_sample=False, max_new_tokens=NEW, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id)
        assert responses == [tokenizer.decode(greedy[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)] * 4
    # ... while the penalty (far larger than the random model's log-prob gaps) pushes the groups apart.
    # (Compare sets of texts loosely: distinct byte tokens may decode to the same replacement characters.)
    assert all(len(set(r)) > 1 for r in diverse)


def test_bad_arguments(lm, prompts, tiny_lm_dir):
    model, tokenizer = lm
    with pytest.raises(ValueError, match="unknown sampling method"):
        generate_responses(model, tokenizer, prompts, "nucleus", max_new_tokens=NEW)
    right = load_tokenizer(str(tiny_lm_dir), padding_side="right")
    with pytest.raises(ValueError, match="padding_side"):
        generate_responses(model, right, prompts, "beam", max_new_tokens=NEW)


def test_sample_responses_stage(tmp_path, tiny_lm_dir, synthetic_frame):
    train = tmp_path / "train.parquet"
    write_parquet(synthetic_frame.head(20), train, {"stage": "test"})
    output = tmp_path / "samples" / "top_p.parquet"
    params = {"num_responses": 3, "max_new_tokens": 4, "top_p": 0.9, "seed": 0, "batch_size": 2}
    sampling = {"seed": 0, "batch_size": 2, "samplers": {"top_p": {"num_responses": 3, "max_new_tokens": 4,
                                                                    "top_p": 0.9}}}
    returned = sample_responses(str(tiny_lm_dir), str(train), str(output), "top_p", sampling,
                                {"limit": 4, "seed": 5, "key": "data.train_prompts"}, device="cpu")
    samples = pd.read_parquet(output)
    pd.testing.assert_frame_equal(samples, returned)
    assert list(samples.columns) == SAMPLE_COLUMNS
    assert len(samples) == 4 * 3
    expected = select_prompts(synthetic_frame.head(20), 4, seed=5)
    assert set(samples["prompt_id"]) == set(expected["prompt_id"])
    ordered = samples.sort_values(["prompt_id", "response_index"], ignore_index=True)
    pd.testing.assert_frame_equal(samples, ordered)  # written sorted, so shards gather into the same order
    for pid, group in samples.groupby("prompt_id"):
        assert sorted(group["response_index"]) == [0, 1, 2]
        assert set(group["prompt"]) == set(expected.loc[expected["prompt_id"] == pid, "prompt"])
    assert (samples["source"] == "top_p").all()
    provenance = read_provenance(output)
    assert provenance["stage"] == "sample_responses" and provenance["method"] == "top_p"
    assert provenance["params"].items() >= params.items() and provenance["limit"] == 4
