"""Online RRHF (OP-k, OP-k+KL): the exact span KL, rho's logits, the query windows, and short real runs on tiny
local models."""

import math
import re

import pandas as pd
import pytest
import torch
from conftest import last_turn_prompts

from rrhf.models.token_spans import span_kl
from rrhf.training.online_rrhf import query_windows

# ---------------------------------------------------------------------------------------------------------------
# span_kl


def hand_span_kl(logits: torch.Tensor, reference: torch.Tensor, spans) -> list[float]:
    """KL(pi || rho) of each row's span by plain loops: for t in [max(start, 1), end), the KL between the
    next-token distributions given by the logits at t - 1, summed over the vocabulary."""
    values = []
    for row, (start, end) in enumerate(spans):
        total = 0.0
        for t in range(max(start, 1), end):
            p = torch.softmax(logits[row, t - 1].double(), -1)
            q = torch.softmax(reference[row, t - 1].double(), -1)
            total += sum(float(p[v]) * (math.log(float(p[v])) - math.log(float(q[v]))) for v in range(len(p)))
        values.append(total)
    return values


def test_span_kl_matches_a_hand_computation():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 5, generator=generator)
    reference = torch.randn(3, 7, 5, generator=generator)
    spans = [(2, 5), (0, 7), (4, 7)]  # row 1 starts at 0: clipped to 1, as in span_logprobs
    kl = span_kl(logits, reference, spans)
    assert kl.shape == (3,)
    expected = hand_span_kl(logits, reference, spans)
    assert kl.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert all(value > 0 for value in expected)
    # Start 0 and start 1 are the same span (no token predicts position 0).
    assert torch.allclose(span_kl(logits, reference, [(1, 5)] * 3), span_kl(logits, reference, [(0, 5)] * 3))


def test_span_kl_is_zero_for_equal_logits_and_positive_when_a_span_token_differs():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 6, 11, generator=generator)
    spans = [(2, 5), (1, 6)]
    assert torch.equal(span_kl(logits, logits.clone(), spans), torch.zeros(2))
    changed = logits.clone()
    changed[0, 3, 4] += 2.0  # predicts token 4 of row 0, which is in its span [2, 5)
    kl = span_kl(logits, changed, spans)
    assert kl[0] > 0
    assert kl[1] == 0  # rows are independent
    assert float(kl[0]) == pytest.approx(hand_span_kl(logits, changed, spans)[0], rel=1e-5)


@pytest.mark.parametrize("position", range(6))
def test_span_kl_uses_exactly_the_logits_that_predict_span_tokens(position):
    # Span [2, 5) of a length-6 row uses the logits at 1, 2 and 3: those at 0 (predicting token 1, before the
    # span), at 4 (predicting token 5, after it) and at the last position (predicting nothing) play no part.
    generator = torch.Generator().manual_seed(2)
    logits = torch.randn(1, 6, 9, generator=generator)
    changed = logits.clone()
    changed[0, position] = torch.randn(9, generator=generator) * 3
    kl = float(span_kl(logits, changed, [(2, 5)])[0])
    assert kl > 0 if position in (1, 2, 3) else kl == 0.0
    # The same change counts once the span reaches the token it predicts (the last position never does).
    reaching = [(position + 1, 6)] if position + 1 < 6 else [(1, 6)]
    assert (float(span_kl(logits, changed, reaching)[0]) > 0) == (position + 1 < 6)


# ---------------------------------------------------------------------------------------------------------------
# response_kl and FrozenReference.lm_logits


@pytest.fixture()
def some_replies(synthetic_frame):
    frame = synthetic_frame.head(5)
    replies = [" ".join(reply.split()[:n]) for reply, n in zip(frame["chosen"], [1, 3, 6, 2, 9])]
    return list(frame["prompt"]), replies


def test_response_kl_is_zero_when_pi_is_rho_and_positive_otherwise(tiny_lm_dir, some_replies):
    from rrhf.models.loading import load_causal_lm
    from rrhf.models.value_head_policy import FrozenReference
    from rrhf.training.online_rrhf import response_kl

    prompts, replies = some_replies
    model, tokenizer = load_causal_lm(str(tiny_lm_dir))
    reference = FrozenReference(model)
    before = response_kl(model, reference, tokenizer, prompts, replies, max_length=96, batch_size=2)
    assert before == [0.0] * len(prompts)

    rho, _ = load_causal_lm(str(tiny_lm_dir))
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        weight = model.get_output_embeddings().weight
        weight.add_(0.5 * torch.randn(weight.shape, generator=generator))
    after = response_kl(model, reference, tokenizer, prompts, replies, max_length=96, batch_size=2)
    assert len(after) == len(prompts) and all(value > 0 for value in after), after
    # Batching (padding, sorting by length) changes nothing: one response at a time gives the same values.
    one_by_one = response_kl(model, reference, tokenizer, prompts, replies, max_length=96, batch_size=1)
    assert after == pytest.approx(one_by_one, rel=1e-4)

    # rho's logits stay those of the model before the change, though the change was made in place.
    ids = torch.tensor([tokenizer(prompts[0] + replies[0], add_special_tokens=False)["input_ids"]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = rho(input_ids=ids, attention_mask=mask).logits
        assert not torch.allclose(model(input_ids=ids, attention_mask=mask).logits, expected, atol=1e-3)
    assert torch.allclose(reference.lm_logits(model, ids, mask), expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# query_windows


def epochs_of(windows, count):
    """The windows' queries, cut back into epochs of ``count`` visits."""
    visits = [query for window in windows for query in window]
    return [visits[i:i + count] for i in range(0, len(visits), count)]


def test_query_windows_visit_every_query_once_per_epoch():
    count, size = 10, 4
    windows = query_windows(count, size, epochs=3, seed=7)
    assert [len(w) for w in windows] == [4, 4, 2] * 3  # full windows, the last of each epoch shorter
    epochs = epochs_of(windows, count)
    assert len(epochs) == 3
    for order in epochs:
        assert sorted(order) == list(range(count))
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]  # each epoch is shuffled afresh
    exact = query_windows(12, 4, epochs=2, seed=7)
    assert [len(w) for w in exact] == [4] * 6


def test_query_windows_with_a_fractional_epoch():
    count = 10
    windows = query_windows(count, 4, epochs=1.5, seed=3)
    assert sum(len(w) for w in windows) == round(1.5 * count)
    assert all(1 <= len(w) <= 4 for w in windows)
    first, second = epochs_of(windows, count)
    assert sorted(first) == list(range(count))
    assert len(set(second)) == len(second) == 5
    # The half epoch is the start of the order a whole second epoch would have.
    assert second == epochs_of(query_windows(count, 4, epochs=2, seed=3), count)[1][:5]
    assert sum(len(w) for w in query_windows(7, 3, epochs=0.5, seed=0)) == round(0.5 * 7)


def test_query_windows_follow_the_seed():
    assert query_windows(20, 6, 2, seed=1) == query_windows(20, 6, 2, seed=1)
    other = query_windows(20, 6, 2, seed=2)
    assert epochs_of(other, 20)[0] != epochs_of(query_windows(20, 6, 2, seed=1), 20)[0]
    assert sorted(epochs_of(other, 20)[0]) == list(range(20))


# ---------------------------------------------------------------------------------------------------------------
# Short real runs


SAMPLER = {"num_responses": 2, "num_beams": 2, "num_beam_groups": 2, "diversity_penalty": 1.0, "max_new_tokens": 8}
SAMPLING = {"seed": 0, "batch_size": 16, "samplers": {"diverse_beam": SAMPLER}}
ONLINE = {"steps_per_sample": 2, "kl_coef": 0.5, "sampler": "diverse_beam"}
TRAINING = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 4, "max_length": 96, "seed": 0, "warmup_ratio": 0.0}
SCORING = {"batch_size": 16, "max_length": 128}
ALL_PROMPTS = {"limit": None, "seed": 0, "key": "data.train_prompts"}


def rrhf_block(training):
    """The rrhf block of these runs: the summed fine-tuning loss (the paper's), the schema's defaults otherwise."""
    return {"training": training, "ft_reduction": "sum"}
QUERIES = 18  # windows of 2 x 4 = 8 queries: 8, 8 and a short 2 in each epoch


def write_inputs(folder, synthetic_frame, count, source=None):
    """train.parquet (prompt_id, prompt; from a dataset of ``source``, whose gold reward grades the samples, as
    its provenance says) and provided.parquet (the chosen and rejected replies, scored)."""
    from rrhf.io import write_parquet

    frame = synthetic_frame.head(count).copy()
    frame["prompt"] = last_turn_prompts(frame)
    write_parquet(frame[["prompt_id", "prompt"]], folder / "train.parquet",
                  {"stage": "test", **({"dataset": {"source": source}} if source else {})})
    rows = []
    for _, row in frame.iterrows():
        for index, source, reward in ((0, "chosen", 1.0), (1, "rejected", -1.0)):
            reply = " " + " ".join(row[source].split()[:6])
            rows.append((row["prompt_id"], row["prompt"], index, reply, source, reward))
    provided = pd.DataFrame(rows, columns=["prompt_id", "prompt", "response_index", "response", "source", "reward"])
    write_parquet(provided, folder / "provided.parquet", {"stage": "test"})
    return frame[["prompt_id", "prompt"]], provided


@pytest.fixture(scope="module")
def online_run(tmp_path_factory, synthetic_frame, tiny_lm_dir, tiny_reward_dir):
    """OP-2+KL for 2 epochs over 18 queries: 6 sampling rounds."""
    from rrhf.training.online_rrhf import train_online_rrhf

    folder = tmp_path_factory.mktemp("online")
    train, provided = write_inputs(folder, synthetic_frame, QUERIES, source="synthetic")
    metrics = train_online_rrhf(str(tiny_lm_dir), str(tiny_reward_dir), str(folder / "train.parquet"),
                                str(folder / "model"), rrhf_block(TRAINING), ONLINE, SAMPLING, SCORING, ALL_PROMPTS,
                                {}, provided=str(folder / "provided.parquet"), log_path=str(folder / "run.log"))
    return {"folder": folder, "metrics": metrics, "train": train, "provided": provided,
            "samples": pd.read_parquet(folder / "model" / "online_samples.parquet"),
            "log": pd.read_parquet(folder / "model" / "train_log.parquet")}


def expected_schedule(train: pd.DataFrame, online: dict, training: dict):
    """(query frame in training order, windows, optimisation step at which each round starts, steps in all),
    from the selection, query_windows and the batch size."""
    from rrhf.data.preference_pairs import select_prompts

    queries = select_prompts(train, None, 0)
    windows = query_windows(len(queries), online["steps_per_sample"] * training["batch_size"], training["epochs"],
                            training["seed"])
    steps = [math.ceil(len(w) / training["batch_size"]) for w in windows]
    starts = [sum(steps[:r]) for r in range(len(windows))]
    return queries, windows, starts, sum(steps)


def test_online_run_samples_once_per_round_at_the_right_steps(online_run):
    queries, windows, starts, _ = expected_schedule(online_run["train"], ONLINE, TRAINING)
    per_window = ONLINE["steps_per_sample"] * TRAINING["batch_size"]
    assert len(windows) == TRAINING["epochs"] * math.ceil(QUERIES / per_window)
    assert online_run["metrics"]["rounds"] == len(windows)
    assert online_run["metrics"]["queries"] == QUERIES

    text = (online_run["folder"] / "run.log").read_text()
    logged = [(int(r), int(s)) for r, s in re.findall(r"sampling round (\d+) at step (\d+):", text)]
    assert logged == list(enumerate(starts))

    samples = online_run["samples"]
    assert sorted(samples["round"].unique()) == list(range(len(windows)))
    assert samples.groupby("round")["step"].agg(["min", "max"]).apply(tuple, axis=1).tolist() == \
        [(s, s) for s in starts]
    # Within an epoch rounds start every k steps; the next epoch follows on from the last (short) window.
    assert starts[:3] == [0, ONLINE["steps_per_sample"], 2 * ONLINE["steps_per_sample"]]


def test_online_run_samples_each_window_of_queries(online_run):
    queries, windows, _, _ = expected_schedule(online_run["train"], ONLINE, TRAINING)
    samples = online_run["samples"]
    k = SAMPLER["num_responses"]
    assert len(samples) == online_run["metrics"]["responses_drawn"] == k * sum(len(w) for w in windows)
    for round_number, window in enumerate(windows):
        drawn = samples[samples["round"] == round_number]
        expected = queries.iloc[window]
        assert drawn["prompt_id"].value_counts().to_dict() == {pid: k for pid in expected["prompt_id"]}
        assert sorted(drawn["response_index"]) == sorted(list(range(k)) * len(window))
        prompts = dict(zip(expected["prompt_id"], expected["prompt"]))
        assert (drawn["prompt"] == drawn["prompt_id"].map(prompts)).all()
    assert (samples["source"] == ONLINE["sampler"]).all()


def test_online_samples_carry_rewards_and_the_kl_penalty(online_run):
    from rrhf.data.gold_reward import gold_rewards

    samples = online_run["samples"]
    expected = {"step", "round", "prompt_id", "prompt", "response_index", "response", "source", "reward", "kl",
                "training_reward", "gold_reward"}
    assert expected <= set(samples.columns)
    assert samples[["reward", "kl", "training_reward"]].apply(lambda c: c.map(math.isfinite)).all().all()
    assert samples["training_reward"].tolist() == pytest.approx(
        (samples["reward"] - ONLINE["kl_coef"] * samples["kl"]).tolist(), abs=1e-6)
    first = samples[samples["round"] == 0]
    later = samples[samples["round"] > 0]
    assert first["kl"].abs().max() < 1e-6  # no step yet: pi = rho
    assert (later["kl"] > 0).all(), later.groupby("round")["kl"].describe()
    assert not (samples["training_reward"] == samples["reward"]).all()
    regraded = gold_rewards(samples, "synthetic")
    assert samples["gold_reward"].map(math.isfinite).all()  # every prompt is one the gold reward grades
    assert samples["gold_reward"].tolist() == pytest.approx(regraded)


def test_online_rewards_are_the_reward_models(online_run, tiny_reward_dir):
    from rrhf.models.loading import load_reward_model
    from rrhf.scoring.rewards import score

    samples = online_run["samples"]
    some = samples.groupby("round").head(2)
    model, tokenizer = load_reward_model(str(tiny_reward_dir))
    rescored = score(model, tokenizer, list(some["prompt"]), list(some["response"]), 4, SCORING["max_length"])
    assert some["reward"].tolist() == pytest.approx(rescored, abs=1e-4)


def test_online_train_log_has_a_row_per_step_with_its_round(online_run):
    _, windows, starts, total = expected_schedule(online_run["train"], ONLINE, TRAINING)
    log, samples = online_run["log"], online_run["samples"]
    assert len(log) == total == online_run["metrics"]["steps"]
    assert log["step"].tolist() == list(range(1, total + 1))
    assert {"round", "sample_reward", "sample_gold_reward", "sample_kl", "loss", "rank_accuracy"} <= set(log.columns)
    ends = starts[1:] + [total]
    expected_rounds = [r for r in range(len(windows)) for _ in range(starts[r], ends[r])]
    assert log["round"].astype(int).tolist() == expected_rounds
    round_reward = samples.groupby("round")["reward"].mean()
    round_kl = samples.groupby("round")["kl"].mean()
    assert log["sample_reward"].tolist() == pytest.approx(log["round"].map(round_reward).tolist(), abs=1e-6)
    assert log["sample_kl"].tolist() == pytest.approx(log["round"].map(round_kl).tolist(), abs=1e-6)
    round_gold = samples.groupby("round")["gold_reward"].mean()
    assert log["sample_gold_reward"].tolist() == pytest.approx(log["round"].map(round_gold).tolist(), abs=1e-6)
    assert log["epoch"].iloc[-1] == pytest.approx(TRAINING["epochs"])
    assert log["loss"].map(math.isfinite).all()
    metrics = online_run["metrics"]
    assert metrics["sample_kl_first_round"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["sample_kl_last_round"] == pytest.approx(round_kl.iloc[-1])


def test_online_model_is_saved_and_has_moved(online_run, tiny_lm_dir):
    from rrhf.models.loading import load_causal_lm

    trained, _ = load_causal_lm(str(online_run["folder"] / "model"))
    initial, _ = load_causal_lm(str(tiny_lm_dir))
    assert (online_run["folder"] / "model" / "metrics.json").exists()
    assert any(not torch.equal(a, b) for a, b in zip(trained.parameters(), initial.parameters()))


def test_online_run_without_kl(tmp_path, synthetic_frame, tiny_lm_dir, tiny_reward_dir):
    """OP-k: no reference, kl NaN, the reward trained on is the reward model's."""
    from rrhf.training.online_rrhf import train_online_rrhf

    train, _ = write_inputs(tmp_path, synthetic_frame, 8)
    online = {**ONLINE, "steps_per_sample": 1, "kl_coef": 0.0}
    sampling = {**SAMPLING, "samplers": {"diverse_beam": {**SAMPLER, "max_new_tokens": 4}}}
    training = {**TRAINING, "epochs": 1}
    metrics = train_online_rrhf(str(tiny_lm_dir), str(tiny_reward_dir), str(tmp_path / "train.parquet"),
                                str(tmp_path / "model"), rrhf_block(training), online, sampling, SCORING,
                                ALL_PROMPTS, {}, provided=str(tmp_path / "provided.parquet"),
                                log_path=str(tmp_path / "run.log"))
    samples = pd.read_parquet(tmp_path / "model" / "online_samples.parquet")
    _, windows, starts, total = expected_schedule(train, online, training)
    assert metrics["rounds"] == len(windows) == 2
    assert sorted(samples["step"].unique()) == starts
    assert (samples["kl"] >= 0).all() and samples["kl"].notna().all()  # measured without +KL too
    assert (samples.loc[samples["step"] > 0, "kl"] > 0).any()  # the policy has moved from rho
    assert samples["training_reward"].tolist() == samples["reward"].tolist()  # ... but not subtracted
    assert samples["gold_reward"].isna().all()  # the data records no dataset: no gold reward
    assert len(pd.read_parquet(tmp_path / "model" / "train_log.parquet")) == total


def test_provided_responses_must_cover_every_selected_prompt(tmp_path, synthetic_frame, tiny_lm_dir,
                                                             tiny_reward_dir):
    from rrhf.io import write_parquet
    from rrhf.training.online_rrhf import train_online_rrhf

    train, provided = write_inputs(tmp_path, synthetic_frame, 8)
    partial = tmp_path / "partial.parquet"
    write_parquet(provided[provided["prompt_id"] != train["prompt_id"].iloc[3]], partial, {"stage": "test"})
    with pytest.raises(ValueError, match=re.escape(str(partial)) + r": no provided responses for 1 of the 8"):
        train_online_rrhf(str(tiny_lm_dir), str(tiny_reward_dir), str(tmp_path / "train.parquet"),
                          str(tmp_path / "model"), rrhf_block(TRAINING), ONLINE, SAMPLING, SCORING, ALL_PROMPTS, {},
                          provided=str(partial))
    assert not (tmp_path / "model").exists()
