"""Prompt formats (rrhf.models.prompt_formats): HH transcripts as chat messages, each model reading prompts in the
format its folder records, every encoder of the library going through it, and the format study's table."""

import math

import pandas as pd
import pytest
import torch

from rrhf.io import write_json, write_parquet
from rrhf.models.loading import load_causal_lm, load_tokenizer
from rrhf.models.prompt_formats import (
    FORMAT_KEY,
    model_prompts,
    model_responses,
    prompt_format,
    set_prompt_format,
    transcript_messages,
)
from rrhf.models.token_spans import encode_pair, prompt_token_ids
from rrhf.report.prompt_format_table import compare_prompt_formats

TEMPLATE = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")
HH_PROMPT = "\n\nHuman: Where is Paris?\n\nAssistant: In France.\n\nHuman: And Rome?\n\nAssistant:"


@pytest.fixture()
def chat_lm_dir(tmp_path, tiny_lm_dir):
    """The tiny LM saved again with a chat template and the chat_template format recorded, as import_model does."""
    model, tokenizer = load_causal_lm(str(tiny_lm_dir))
    tokenizer.chat_template = TEMPLATE
    tokenizer.init_kwargs[FORMAT_KEY] = "chat_template"
    model.save_pretrained(tmp_path / "chat")
    tokenizer.save_pretrained(tmp_path / "chat")
    return tmp_path / "chat"


def test_an_hh_transcript_becomes_its_turns():
    assert transcript_messages(HH_PROMPT) == [
        {"role": "user", "content": "Where is Paris?"}, {"role": "assistant", "content": "In France."},
        {"role": "user", "content": "And Rome?"}]
    # Text before the first marker, and a prompt without markers, are the user's.
    assert transcript_messages("Say hi.\n\nAssistant:") == [{"role": "user", "content": "Say hi."}]
    assert transcript_messages("just text") == [{"role": "user", "content": "just text"}]


def test_raw_is_the_text_as_it_is_and_the_default(tiny_lm_dir):
    tokenizer = load_tokenizer(str(tiny_lm_dir))
    assert prompt_format(tokenizer) == "raw"
    assert model_prompts(tokenizer, [HH_PROMPT]) == [HH_PROMPT]
    assert model_responses(tokenizer, [" Sure."]) == [" Sure."]
    ids = tokenizer(HH_PROMPT, add_special_tokens=False)["input_ids"]
    assert prompt_token_ids(tokenizer, [HH_PROMPT]) == [ids]


def test_a_folder_recording_chat_template_reads_prompts_through_it(chat_lm_dir):
    tokenizer = load_tokenizer(str(chat_lm_dir))
    assert prompt_format(tokenizer) == "chat_template"
    rendered = "<user>Where is Paris?</user>\n<assistant>In France.</assistant>\n<user>And Rome?</user>\n<assistant>"
    assert model_prompts(tokenizer, [HH_PROMPT]) == [rendered]
    assert model_responses(tokenizer, [" Sure. "]) == ["Sure. "]
    # The encoders of the library (training batches, scoring, perplexity, KL: token_spans) read the rendering.
    ids, start = encode_pair(tokenizer, HH_PROMPT, " Rome is in Italy.", max_length=512)
    assert ids[:start] == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert ids[start:-1] == tokenizer("Rome is in Italy.", add_special_tokens=False)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id


def test_the_format_survives_a_save_of_the_tokenizer(chat_lm_dir, tmp_path):
    tokenizer = load_tokenizer(str(chat_lm_dir))
    tokenizer.save_pretrained(tmp_path / "trained")  # what every trainer does with its init's tokenizer
    assert prompt_format(load_tokenizer(str(tmp_path / "trained"))) == "chat_template"


def test_a_model_can_be_made_to_read_another_format_and_generation_follows(chat_lm_dir):
    from rrhf.sampling.generation import encode_prompts

    model, tokenizer = load_causal_lm(str(chat_lm_dir))
    chat, _ = encode_prompts(tokenizer, [HH_PROMPT], None)
    set_prompt_format(tokenizer, "raw")
    raw, _ = encode_prompts(tokenizer, [HH_PROMPT], None)
    assert raw["input_ids"][0].tolist() == tokenizer(HH_PROMPT, add_special_tokens=False)["input_ids"]
    assert chat["input_ids"].shape != raw["input_ids"].shape or not torch.equal(chat["input_ids"], raw["input_ids"])
    with pytest.raises(ValueError, match="not one of"):
        set_prompt_format(tokenizer, "markdown")


def test_chat_template_needs_a_template(tiny_lm_dir):
    tokenizer = load_tokenizer(str(tiny_lm_dir))
    with pytest.raises(ValueError, match="no chat template"):
        set_prompt_format(tokenizer, "chat_template")


def test_a_recorded_format_that_does_not_exist_is_named(tiny_lm_dir):
    tokenizer = load_tokenizer(str(tiny_lm_dir))
    tokenizer.init_kwargs[FORMAT_KEY] = "chatml"
    with pytest.raises(ValueError, match="rrhf_prompt_format is 'chatml'"):
        prompt_format(tokenizer)


def evaluation_folder(folder, prompt_format, rewards, raw, responses, tokens):
    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(len(rewards))], "raw_response": raw,
                          "response": responses, "reward": rewards, "n_tokens": tokens})
    write_parquet(frame, folder / "generations.parquet", {"prompt_format": prompt_format})
    write_json({"reward_mean": float(frame["reward"].mean()), "reward_sem": 0.1, "ppl": 12.0,
                "response_tokens": float(frame["n_tokens"].mean())}, folder / "metrics.json")
    return str(folder)


def test_the_format_table_pairs_the_formats_over_prompts(tmp_path):
    raw = evaluation_folder(tmp_path / "raw", "raw", [0.0, 1.0, 2.0, 3.0],
                            ["a\n\nHuman: more", "b", "", "d"], ["a", "b", "", "d"], [8, 2, 0, 8])
    chat = evaluation_folder(tmp_path / "chat", "chat_template", [1.0, 1.5, 3.0, 3.5],
                             ["a", "b", "c", "d"], ["a", "b", "c", "d"], [3, 4, 5, 8])
    table = compare_prompt_formats([chat, raw], str(tmp_path / "formats.csv"), max_new_tokens=8)
    assert list(table["prompt_format"]) == ["raw", "chat_template"]
    raw_row, chat_row = table.iloc[0], table.iloc[1]
    assert raw_row["ran_into_next_turn_share"] == 0.25 and raw_row["empty_share"] == 0.25
    assert raw_row["filled_max_new_tokens_share"] == 0.5 and chat_row["filled_max_new_tokens_share"] == 0.25
    assert raw_row["reward_vs_raw"] == 0.0
    # chat - raw per prompt: 1, 0.5, 1, 0.5: mean 0.75, sd 0.2887, t_{0.975,3} = 3.1824
    half = 3.182446 * 0.288675 / 2
    assert chat_row["reward_vs_raw"] == pytest.approx(0.75)
    assert chat_row["reward_vs_raw_ci_low"] == pytest.approx(0.75 - half, abs=1e-5)
    assert math.isclose(chat_row["reward_vs_raw_ci_high"], 0.75 + half, abs_tol=1e-5)
    assert (tmp_path / "formats.csv").is_file()


def test_the_format_table_refuses_unpaired_prompts(tmp_path):
    raw = evaluation_folder(tmp_path / "raw", "raw", [0.0, 1.0], ["a", "b"], ["a", "b"], [1, 1])
    chat = evaluation_folder(tmp_path / "chat", "chat_template", [1.0], ["a"], ["a"], [1])
    with pytest.raises(ValueError, match="different prompts"):
        compare_prompt_formats([raw, chat], str(tmp_path / "formats.csv"), max_new_tokens=8)
    assert not (tmp_path / "formats.csv").exists()
