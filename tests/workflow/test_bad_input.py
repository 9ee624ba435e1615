"""Bad input from a colleague's files stops with a message that names the file, the row or the path.

Scored training sets (NaN, text or repeated rewards, no rows), a reward model that gives NaN, prompts longer than
the policy's context, model folders that are missing, empty, or hold a tokenizer that does not fit the model,
and asking for more prompts than the dataset has. (Config files and config values: test_config_checks.py and
test_config_validation.py; damaged data files: test_data.py.)
"""

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedTokenizerFast

from rrhf.evaluation.generations import evaluate_policy
from rrhf.evaluation.perplexity import response_nll
from rrhf.io import write_parquet
from rrhf.models.loading import load_causal_lm, load_reward_model, load_tokenizer
from rrhf.report.tables import table6
from rrhf.sampling.generation import encode_prompts, generate_responses, prompt_budget, sample_responses
from rrhf.scoring.rewards import score_samples
from rrhf.scoring.training_sets import assemble_training_set, check_scored_set
from rrhf.training.rrhf import train_rrhf
from scored_sets import scored_set

TRAINING = {"epochs": 1, "learning_rate": 1e-4, "batch_size": 2, "max_length": 64, "seed": 0}


@pytest.fixture()
def rrhf_log(caplog):
    """Records of the ``rrhf`` logger (which does not propagate once a stage has set it up)."""
    logger = logging.getLogger("rrhf")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="rrhf")
    yield caplog
    logger.removeHandler(caplog.handler)


@pytest.fixture(scope="module")
def scored(synthetic_frame):
    return scored_set(synthetic_frame, 4)  # 4 prompts x 4 responses, rewards 2, -2, 0, -1


def written(tmp_path, frame, name="scored.parquet"):
    path = tmp_path / name
    write_parquet(frame, path, {"stage": "test"})
    return str(path)


# --- scored training sets -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_reward_stops_rrhf_training_naming_file_and_row(tmp_path, tiny_lm_dir, scored, bad):
    # NaN trained with exit 0: argmax took the NaN row as the fine-tuning target.
    frame = scored.copy()
    frame.loc[5, "reward"] = bad
    path = written(tmp_path, frame)
    with pytest.raises(ValueError) as info:
        train_rrhf(str(tiny_lm_dir), path, str(tmp_path / "model"), {"training": TRAINING}, {})
    pid = frame.loc[5, "prompt_id"]
    assert str(info.value) == (f"{path}: 1 reward(s) are NaN or infinite: row 5 (prompt_id {pid}, "
                               f"response_index 1): {bad!r}")
    assert not (tmp_path / "model").exists()


def test_a_non_finite_reward_stops_table6_statistics(tmp_path):
    # Table 6's Mean/Std/Max skipped a NaN (and printed inf for an infinite reward).
    frame = pd.DataFrame({"prompt_id": ["a", "a", "b", "b"], "response_index": [0, 1, 0, 1],
                          "reward": [1.0, np.nan, 2.0, np.inf]})
    path = written(tmp_path, frame)
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"reward_mean": 1.0, "ppl": 3.0}')
    with pytest.raises(ValueError) as info:
        table6([{"policy": "p", "setting": "DP"}], [str(metrics)], [path], str(tmp_path / "table6.csv"))
    assert str(info.value) == (f"{path}: 2 reward(s) are NaN or infinite: row 1 (prompt_id a, response_index 1): "
                               "nan; row 3 (prompt_id b, response_index 1): inf")
    assert not (tmp_path / "table6.csv").exists()


def test_text_repeated_and_missing_rows_are_named(tmp_path, scored):
    text = scored.assign(reward=scored["reward"].astype(str))
    text.loc[2, "reward"] = "n/a"
    # was: "could not convert string to float: 'n/a'" (training), a TypeError of pandas (Table 6)
    with pytest.raises(ValueError, match=r"x.parquet: column reward holds .* values, not numbers: row 2 "
                                         r"\(prompt_id \w+, response_index 2\): 'n/a'"):
        check_scored_set(text, "x.parquet")
    # Numbers stored as text trained silently and broke Table 6: refused too.
    with pytest.raises(ValueError, match="every value is a number stored as text"):
        check_scored_set(scored.assign(reward=scored["reward"].astype(str)), "x.parquet")
    # A repeated (prompt_id, response_index) was trained as one more response and counted twice in Table 6.
    repeated = pd.concat([scored, scored.iloc[[6]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"x.parquet: 2 rows repeat a \(prompt_id, response_index\): row 6 .*; "
                                         r"row 16"):
        check_scored_set(repeated, "x.parquet")
    # No rows: training said "0 examples make no batch of 2" (no file), Table 6 wrote empty cells.
    with pytest.raises(ValueError, match="x.parquet: the scored set has no rows"):
        check_scored_set(scored.iloc[:0], "x.parquet")


def test_prompts_the_ranking_loss_cannot_use_are_counted(scored, rrhf_log):
    frame = scored[(scored["prompt_id"] != scored["prompt_id"].iloc[0]) | (scored["response_index"] == 0)].copy()
    frame.loc[frame["prompt_id"] == scored["prompt_id"].iloc[4], "reward"] = 1.0  # all four tie
    check_scored_set(frame, "x.parquet")
    assert "x.parquet: of 4 prompts, 1 have a single response and 1 have responses that all share one reward" \
        in rrhf_log.text
    rrhf_log.clear()
    check_scored_set(scored, "x.parquet")
    assert rrhf_log.text == ""


def test_assembling_a_training_set_checks_its_parts(tmp_path, scored):
    frame = scored.copy()
    frame.loc[0, "reward"] = np.nan
    path = written(tmp_path, frame, "beam.parquet")
    with pytest.raises(ValueError, match="beam.parquet: 1 reward"):
        assemble_training_set(path, None, str(tmp_path / "out.parquet"), "BP")


@pytest.fixture(scope="module")
def nan_reward_dir(tmp_path_factory, tiny_reward_dir):
    """The tiny reward model with a NaN in its score head: every reward it gives is NaN."""
    model = AutoModelForSequenceClassification.from_pretrained(tiny_reward_dir)
    with torch.no_grad():
        model.score.weight[0, 0] = float("nan")
    path = tmp_path_factory.mktemp("nan_reward")
    model.save_pretrained(path)
    load_tokenizer(str(tiny_reward_dir)).save_pretrained(path)
    return path


def test_a_reward_model_that_gives_nan_stops_scoring_naming_the_rows(tmp_path, nan_reward_dir, scored):
    samples = written(tmp_path, scored.drop(columns=["reward"]), "samples.parquet")
    with pytest.raises(ValueError) as info:
        score_samples(samples, str(nan_reward_dir), str(tmp_path / "rewards.parquet"),
                      {"batch_size": 8, "max_length": 64})
    message = str(info.value)
    assert message.startswith(f"{samples}: 16 reward(s) are NaN or infinite: row 0 (prompt_id ")
    assert message.endswith("; and 11 more")
    assert not (tmp_path / "rewards.parquet").exists()


# --- prompts longer than the policy's context ----------------------------------------------------------------

@pytest.fixture(scope="module")
def long_prompt(synthetic_frame, tiny_lm_dir):
    """An HH prompt of more than 256 tokens, the tiny GPT-2's n_positions."""
    prompt = "\n\nHuman: " + " ".join(synthetic_frame["chosen"].head(40)) + "\n\nAssistant:"
    assert len(load_tokenizer(str(tiny_lm_dir))(prompt, add_special_tokens=False)["input_ids"]) > 300
    return prompt


@pytest.mark.parametrize("method, params", [("greedy", {"num_responses": 1}), ("beam", {"num_beams": 2}),
                                            ("diverse_beam", {"num_beams": 2, "num_beam_groups": 2}),
                                            ("top_p", {})])
def test_a_prompt_longer_than_the_context_keeps_its_last_tokens(tiny_lm_dir, long_prompt, rrhf_log, method,
                                                                params):
    # was: IndexError: index out of range in self (GPT-2's position embeddings)
    model, tokenizer = load_causal_lm(str(tiny_lm_dir))
    params = {"num_responses": 2, "max_new_tokens": 6, **params}
    out = generate_responses(model, tokenizer, [long_prompt, "\n\nHuman: hi\n\nAssistant:"], method, batch_size=2,
                             **params)
    assert [len(texts) for texts in out] == [params["num_responses"]] * 2
    assert "cut 1 of 2 prompts to their last 250 tokens: the model's 256 positions hold prompt + max_new_tokens 6" \
        in rrhf_log.text
    if method == "greedy":  # the same reply as for the prompt's last 250 tokens given directly
        ids = torch.tensor([tokenizer(long_prompt, add_special_tokens=False)["input_ids"][-250:]])
        expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        assert out[0][0] == tokenizer.decode(expected[0, 250:], skip_special_tokens=True)


def test_encode_prompts_cuts_from_the_left_and_pads_on_the_left(tiny_lm_dir):
    tokenizer = load_tokenizer(str(tiny_lm_dir))
    texts = ["\n\nHuman: a long question about bread\n\nAssistant:", "\n\nHuman: hi\n\nAssistant:"]
    full = tokenizer(texts, add_special_tokens=False)["input_ids"]
    encoded, cut = encode_prompts(tokenizer, texts, 6)
    assert cut == 2 and encoded["input_ids"].tolist() == [full[0][-6:], full[1][-6:]]
    encoded, cut = encode_prompts(tokenizer, texts, None)
    plain = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    assert cut == 0 and torch.equal(encoded["input_ids"], plain["input_ids"])
    assert torch.equal(encoded["attention_mask"], plain["attention_mask"])
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    with pytest.raises(ValueError, match="max_new_tokens 256 leaves no room for a prompt: the model has 256"):
        prompt_budget(model, 256)


def test_evaluation_generates_and_scores_perplexity_of_long_prompts(tmp_path, tiny_lm_dir, tiny_reward_dir,
                                                                   synthetic_frame, long_prompt, rrhf_log):
    frame = synthetic_frame.head(3).copy()
    frame.loc[0, "prompt"] = long_prompt
    test = written(tmp_path, frame, "test.parquet")
    metrics = evaluate_policy(str(tiny_lm_dir), test, str(tiny_reward_dir), str(tiny_lm_dir), str(tmp_path / "e"),
                              {"method": "greedy", "max_new_tokens": 8, "batch_size": 4},
                              {"batch_size": 4, "max_length": 512},
                              {"limit": None, "seed": 0, "key": "data.test_prompts"},
                              device="cpu",
                              log_path=str(tmp_path / "evaluate.log"))
    assert metrics["n"] == 3 and metrics["ppl"] > 1
    log = (tmp_path / "evaluate.log").read_text()
    assert "cut 1 of 3 prompts to their last 248 tokens" in log
    assert "perplexity: cut 1 of 3 prompts from the left" in log
    model, tokenizer = load_causal_lm(str(tiny_lm_dir))
    logging.getLogger("rrhf").addHandler(rrhf_log.handler)  # evaluate_policy's setup_logging removed it
    response_nll(model, tokenizer, [long_prompt, "\n\nHuman: hi\n\nAssistant:"], [" Sure.", " Hello."], 1024)
    assert "perplexity: cut 1 of 2 prompts from the left to fit prompt + response in 256 tokens" in rrhf_log.text


# --- model folders ------------------------------------------------------------------------------------------

def test_bad_model_paths_are_named_by_the_loaders(tmp_path, monkeypatch, tiny_lm_dir):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_tokenizer").mkdir()
    for name in ("config.json", "model.safetensors"):
        (tmp_path / "no_tokenizer" / name).write_bytes((tiny_lm_dir / name).read_bytes())
    cases = {  # was: "Repo id must use alphanumeric chars ..." / a network error without the path / sentencepiece
        "./missing/model": f"model path './missing/model' does not exist (looked for {tmp_path}/missing/model)",
        "missing/model/folder": "model path 'missing/model/folder' does not exist",
        "empty": "model path 'empty' is not a transformers model folder: it has no config.json and no tokenizer",
        "no_tokenizer": "model path 'no_tokenizer' is not a transformers model folder: it has no tokenizer",
        "org/never-downloaded": "model path 'org/never-downloaded' is not a local folder",
    }
    for path, expected in cases.items():
        with pytest.raises(FileNotFoundError) as info:
            load_causal_lm(path)
        assert str(info.value).startswith(expected), path
    with pytest.raises(FileNotFoundError, match="model path 'empty' is not a transformers model folder"):
        load_reward_model("empty")
    with pytest.raises(FileNotFoundError, match="model path 'empty' is a folder without hf_ckpt.pt"):
        load_reward_model({"path": "empty", "format": "value_head_checkpoint", "backbone": str(tiny_lm_dir)})


def test_a_tokenizer_bigger_than_the_models_vocabulary_is_refused(tmp_path, tiny_lm_dir, tiny_reward_dir):
    # was: IndexError: index out of range in self, when sampling
    tokenizer = load_tokenizer(str(tiny_lm_dir))
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(5)])
    for source, loader in ((tiny_lm_dir, load_causal_lm), (tiny_reward_dir, load_reward_model)):
        folder = tmp_path / source.name
        (AutoModelForCausalLM if loader is load_causal_lm else AutoModelForSequenceClassification) \
            .from_pretrained(source).save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        with pytest.raises(ValueError, match=rf"{folder}: the tokenizer has {len(tokenizer)} tokens but the model's "
                                             rf"embedding table has {len(tokenizer) - 5} rows"):
            loader(str(folder))


def test_a_tokenizer_without_eos_or_pad_is_named(tmp_path, tiny_lm_dir):
    # was: "Asking to pad but the tokenizer does not have a padding token" (no path), when sampling
    plain = PreTrainedTokenizerFast(tokenizer_object=load_tokenizer(str(tiny_lm_dir))._tokenizer)
    plain.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=f"tokenizer of '{tmp_path}' has neither an EOS nor a pad token"):
        load_tokenizer(str(tmp_path))


# --- prompt counts ------------------------------------------------------------------------------------------

def test_more_training_prompts_than_the_dataset_has_stops_sampling(tmp_path, tiny_lm_dir, synthetic_frame):
    # were cut silently to the 20 there are
    train = written(tmp_path, synthetic_frame.head(20), "train.parquet")
    with pytest.raises(ValueError, match=f"data.train_prompts: 72 prompts asked for, but {train} has only 20"):
        sample_responses(str(tiny_lm_dir), train, str(tmp_path / "s.parquet"), "top_p",
                         {"samplers": {"top_p": {"max_new_tokens": 2}}},
                         {"limit": 72, "seed": 0, "key": "data.train_prompts"}, device="cpu")


# --- files the workflow reads back ------------------------------------------------------------------------------

def test_a_damaged_reward_model_names_its_folder(tmp_path, tiny_reward_dir):
    import shutil

    damaged = tmp_path / "reward"
    shutil.copytree(tiny_reward_dir, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    with pytest.raises(ValueError, match=f"{damaged}: cannot read the reward model: the files are damaged"):
        load_reward_model(str(damaged))


def test_a_damaged_checkpoint_names_its_path(tmp_path):
    from rrhf.training.loop import Trainer

    settings = {"folder": str(tmp_path / "checkpoints"), "job": "model", "every_steps": 1, "every_minutes": 0,
                "keep": True, "fingerprint": "f"}

    def trainer():
        return Trainer(torch.nn.Linear(3, 1), {"batch_size": 1, "warmup_ratio": 0.0}, {}, 2, checkpoint=settings)

    first = trainer()
    first.run_epochs([torch.ones(3)], [1], lambda chunk: {"x": torch.stack(chunk)},
                     lambda module, batch: (module(batch["x"]).sum(), {}), 1, seed=0,
                     on_step=lambda micro: first.checkpoint({"micro": micro}))
    saved = tmp_path / "checkpoints" / "model" / "step-00000001"
    (saved / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ValueError, match=f"{saved}: cannot read the checkpoint \\(remove {saved} to start"):
        trainer().resume()
    (saved / "loop_state.json").write_text('{"step": 1, "fingerp')
    with pytest.raises(ValueError, match=f"{saved / 'loop_state.json'}: the checkpoint's loop state is damaged"):
        trainer().resume()


def test_data_max_prompt_tokens_cuts_a_prompt_sooner_than_the_model_would(tiny_lm_dir, long_prompt, rrhf_log):
    model, tokenizer = load_causal_lm(str(tiny_lm_dir))
    out = generate_responses(model, tokenizer, [long_prompt, "\n\nHuman: hi\n\nAssistant:"], "greedy",
                             num_responses=1, max_new_tokens=6, batch_size=2, max_prompt_tokens=40)
    assert "cut 1 of 2 prompts to their last 40 tokens: data.max_prompt_tokens 40" in rrhf_log.text
    ids = torch.tensor([tokenizer(long_prompt, add_special_tokens=False)["input_ids"][-40:]])
    expected = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6,
                              eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    assert out[0][0] == tokenizer.decode(expected[0, 40:], skip_special_tokens=True)
    # A bound above what the model's positions allow changes nothing: the model's limit cuts, and says so.
    generate_responses(model, tokenizer, [long_prompt], "greedy", num_responses=1, max_new_tokens=6,
                       max_prompt_tokens=1000)
    assert "to their last 250 tokens: the model's 256 positions" in rrhf_log.text
