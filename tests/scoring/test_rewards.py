"""Reward scoring, provided responses, and assembling each setting's training set."""

import math

import pandas as pd
import pytest

from rrhf.io import read_provenance, write_parquet
from rrhf.models.loading import load_reward_model
from rrhf.scoring.rewards import check_finite, provided_responses, score
from rrhf.scoring.training_sets import SCORED_COLUMNS, assemble_training_set, training_set_stats


@pytest.fixture(scope="module")
def reward_model(tiny_reward_dir):
    return load_reward_model(str(tiny_reward_dir))


def test_score_is_independent_of_batching(reward_model, synthetic_frame):
    model, tokenizer = reward_model
    rows = synthetic_frame.head(7)
    # Very different lengths, so batches are padded and the length sort reorders them.
    prompts = list(rows["prompt"]) + ["\n\nHuman: hi\n\nAssistant:", "".join(rows["prompt"])]
    responses = list(rows["rejected"]) + [" Hello!", " ok"]
    # max_length 256 = the tiny model's n_positions (and config.yaml's scoring.max_length).
    alone = score(model, tokenizer, prompts, responses, batch_size=1, max_length=256)
    batched = score(model, tokenizer, prompts, responses, batch_size=3, max_length=256)
    assert len(alone) == len(prompts)
    assert batched == pytest.approx(alone, abs=1e-5)
    assert all(math.isfinite(r) for r in alone)
    assert len(set(round(r, 6) for r in alone)) > 1  # the scores do depend on the text
    reversed_scores = score(model, tokenizer, prompts[::-1], responses[::-1], batch_size=4, max_length=256)
    assert reversed_scores[::-1] == pytest.approx(alone, abs=1e-5)


def test_score_truncates_to_max_length(reward_model, synthetic_frame):
    """A long prompt is cut from the left, so only its last tokens (and the response) count."""
    model, tokenizer = reward_model
    prompt, response = synthetic_frame["prompt"].iloc[0], synthetic_frame["chosen"].iloc[0]
    long_prompt = "".join(synthetic_frame["prompt"].iloc[1:6]) + prompt
    short, long = score(model, tokenizer, [prompt, long_prompt], [response, response], max_length=24)
    assert short == pytest.approx(long, abs=1e-5)


def test_score_length_mismatch(reward_model):
    model, tokenizer = reward_model
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        score(model, tokenizer, ["a", "b"], ["c"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_check_finite_names_the_row(bad):
    frame = pd.DataFrame({"prompt_id": ["p0", "p0", "p1", "p1"], "response_index": [0, 1, 0, 1],
                          "reward": [0.5, -1.0, bad, 2.0]})
    with pytest.raises(ValueError) as info:
        check_finite(frame, "scores.parquet")
    message = str(info.value)
    assert "row 2" in message and "p1" in message and "scores.parquet" in message
    check_finite(frame.drop(index=2), "fine")  # finite rewards pass


def test_provided_responses(synthetic_frame):
    frame = synthetic_frame.head(5)
    provided = provided_responses(frame)
    assert len(provided) == 10
    for _, row in frame.iterrows():
        rows = provided[provided["prompt_id"] == row["prompt_id"]]
        assert list(rows["response_index"]) == [0, 1]
        assert list(rows["source"]) == ["chosen", "rejected"]
        assert list(rows["response"]) == [row["chosen"], row["rejected"]]
        assert set(rows["prompt"]) == {row["prompt"]}


# --- assembling the training set -----------------------------------------------------------------

def scored(prompt_ids, k, source, start=0.0):
    rows = [(pid, f"prompt {pid}", i, f"{source} {pid} {i}", source if source != "provided" else
             ("chosen", "rejected")[i], start + 10 * n + i)
            for n, pid in enumerate(prompt_ids) for i in range(k)]
    return pd.DataFrame(rows, columns=SCORED_COLUMNS)


@pytest.fixture
def parts(tmp_path):
    sampled, provided = tmp_path / "sampled.parquet", tmp_path / "provided.parquet"
    # Rows shuffled on disk: the result must be sorted regardless.
    write_parquet(scored(["a", "b", "c"], 4, "beam").sample(frac=1, random_state=0), sampled, {"stage": "t"})
    write_parquet(scored(["a", "b"], 2, "provided", start=100.0), provided, {"stage": "t"})  # no "c"
    return sampled, provided


def test_assemble_sampled_and_provided(tmp_path, parts):
    output = tmp_path / "train_set.parquet"
    assemble_training_set(str(parts[0]), str(parts[1]), str(output), "rrhf_beam_plus_provided")
    frame = pd.read_parquet(output)
    assert list(frame.columns) == SCORED_COLUMNS
    assert sorted(set(frame["prompt_id"])) == ["a", "b"]  # "c" has no provided responses
    for pid, group in frame.groupby("prompt_id"):
        assert list(group["response_index"]) == list(range(6))
        assert list(group["source"]) == ["beam"] * 4 + ["chosen", "rejected"]
        assert list(group["response"][4:]) == [f"provided {pid} 0", f"provided {pid} 1"]
        assert (group["reward"].iloc[4:] >= 100).all() and (group["reward"].iloc[:4] < 100).all()
    assert read_provenance(output)["setting"] == "rrhf_beam_plus_provided"


def test_assemble_one_part(tmp_path, parts):
    only_sampled = tmp_path / "s.parquet"
    assemble_training_set(str(parts[0]), None, str(only_sampled), "s")
    frame = pd.read_parquet(only_sampled)
    assert len(frame) == 12
    assert frame.groupby("prompt_id")["response_index"].apply(list).to_dict() == {p: [0, 1, 2, 3] for p in "abc"}

    only_provided = tmp_path / "p.parquet"
    assemble_training_set(None, str(parts[1]), str(only_provided), "p")
    assert list(pd.read_parquet(only_provided)["response_index"]) == [0, 1, 0, 1]

    with pytest.raises(ValueError, match="neither"):
        assemble_training_set(None, None, str(tmp_path / "none.parquet"), "empty")
    assert not (tmp_path / "none.parquet").exists()


def test_assemble_refuses_parts_without_common_prompts(tmp_path, parts):
    other = tmp_path / "other.parquet"
    write_parquet(scored(["x", "y"], 2, "provided"), other, {"stage": "t"})
    with pytest.raises(ValueError, match="share no prompt_id"):
        assemble_training_set(str(parts[0]), str(other), str(tmp_path / "out.parquet"), "DP")
    assert not (tmp_path / "out.parquet").exists()


def test_assemble_rejects_missing_columns(tmp_path, parts):
    broken = tmp_path / "broken.parquet"
    write_parquet(scored(["a"], 2, "beam").drop(columns=["reward"]), broken, {})
    with pytest.raises(ValueError, match="reward"):
        assemble_training_set(str(broken), str(parts[1]), str(tmp_path / "out.parquet"), "x")


def test_training_set_stats_by_hand():
    frame = pd.DataFrame({"prompt_id": ["a", "a", "a", "b", "b", "b"],
                          "reward": [1.0, 2.0, 3.0, -1.0, 0.0, 7.0]})
    stats = training_set_stats(frame)
    # mean = 12 / 6 = 2; squared deviations 1, 0, 1, 9, 4, 25 -> population variance 40 / 6
    assert stats["train_reward_mean"] == pytest.approx(2.0)
    assert stats["train_reward_std"] == pytest.approx(math.sqrt(40 / 6))
    # best per prompt: 3 and 7 -> mean 5
    assert stats["train_reward_max"] == pytest.approx(5.0)


def test_score_caps_max_length_at_the_models_positions(reward_model, synthetic_frame):
    """Asking for more tokens than the model has positions (256) cuts the prompt instead of crashing."""
    model, tokenizer = reward_model
    long_prompt = "".join(synthetic_frame["prompt"].iloc[:20])
    response = synthetic_frame["chosen"].iloc[0]
    assert len(tokenizer(long_prompt)["input_ids"]) > model.config.n_positions
    capped = score(model, tokenizer, [long_prompt], [response], max_length=4096)
    assert capped == pytest.approx(score(model, tokenizer, [long_prompt], [response], max_length=256), abs=1e-6)
