"""Preference data: the Anthropic HH reader, the hub and synthetic sources, and the prepare stage."""

import gzip
import hashlib
import json
import math
import random
import re

import pandas as pd
import pytest
from conftest import SHARED_HH

from rrhf.data.annotators import preference_scale
from rrhf.data.gold_reward import Request, gold_reward, parse_request
from rrhf.data.preference_pairs import (
    COLUMNS,
    load_anthropic_jsonl,
    load_anthropic_jsonl_with_counts,
    load_hub_dataset,
    load_source,
    make_prompt_id,
    prepare_dataset,
    select_prompts,
)
from rrhf.data.synthetic_hh import (
    Recipe,
    generate_pairs,
    generate_split,
    prompt_grid,
    step_sentences,
    with_flaw,
)
from rrhf.data.synthetic_world import HARMS, TASKS
from rrhf.io import read_provenance
from rrhf.text import repetition

A = "\n\nAssistant:"


def hh(*turns: str) -> str:
    """An HH transcript from alternating human/assistant turns; the last assistant turn may be ''."""
    out = ""
    for i, text in enumerate(turns):
        out += (f"\n\nHuman: {text}" if i % 2 == 0 else f"{A} {text}" if text else A)
    return out


def write_lines(path, lines):
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def real_hh():
    if not SHARED_HH.exists():
        pytest.skip(f"{SHARED_HH} not present")
    with gzip.open(SHARED_HH, "rt", encoding="utf-8") as handle:
        raw = [json.loads(line) for line in handle]
    frame, counts = load_anthropic_jsonl_with_counts(SHARED_HH)
    return raw, frame, counts


def test_real_file_counts(real_hh):
    raw, frame, counts = real_hh
    assert len(raw) == 2312
    assert (counts.mismatched_prompt, counts.empty_response, counts.duplicate_prompt) == (5, 4, 2)
    assert len(frame) == 2301 == len(raw) - counts.total()
    assert len(counts.details) == counts.empty_response + counts.duplicate_prompt


def test_real_file_shape(real_hh):
    _, frame, _ = real_hh
    assert list(frame.columns) == ["prompt_id", "prompt", "chosen", "rejected"] == COLUMNS
    assert frame["prompt"].str.endswith(A).all()
    assert frame["prompt_id"].is_unique
    assert (frame["chosen"].str.strip() != "").all() and (frame["rejected"].str.strip() != "").all()
    assert load_anthropic_jsonl(SHARED_HH).equals(frame)


def test_real_file_reconstructs_transcripts(real_hh):
    raw, frame, _ = real_hh
    originals = {(row["chosen"], row["rejected"]) for row in raw}
    for i in random.Random(0).sample(range(len(frame)), 200):
        row = frame.iloc[i]
        assert (row["prompt"] + row["chosen"], row["prompt"] + row["rejected"]) in originals
        # The response holds no further assistant turn: the split is at the last marker.
        assert A not in row["chosen"] and A not in row["rejected"]


@pytest.mark.parametrize("name", ["pairs.jsonl", "pairs.jsonl.gz"])
def test_small_file_split_and_drops(tmp_path, name):
    prompt = hh("hi", "hello", "how do I bake bread?", "")
    lines = [
        json.dumps({"chosen": prompt + " Mix flour.", "rejected": prompt + " No."}),
        "",  # blank lines are skipped
        json.dumps({"chosen": hh("a", "x"), "rejected": hh("b", "x")}),  # prompts differ
        json.dumps({"chosen": hh("c", "   "), "rejected": hh("c", "fine")}),  # blank chosen response
        json.dumps({"chosen": hh("d", "ok"), "rejected": hh("d", "")}),  # empty rejected response
        json.dumps({"chosen": "no marker at all", "rejected": "no marker at all"}),
        json.dumps({"chosen": prompt + " Again.", "rejected": prompt + " Nope."}),  # repeated prompt
    ]
    path = write_lines(tmp_path / name, lines)
    frame, counts = load_anthropic_jsonl_with_counts(path)
    assert (counts.mismatched_prompt, counts.empty_response, counts.duplicate_prompt) == (2, 2, 1)
    assert len(frame) == 1
    row = frame.iloc[0]
    assert row["prompt"] == "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how do I bake bread?\n\nAssistant:"
    assert (row["chosen"], row["rejected"]) == (" Mix flour.", " No.")
    assert row["prompt_id"] == make_prompt_id(row["prompt"])


@pytest.mark.parametrize("name", ["bad.jsonl", "bad.jsonl.gz"])
@pytest.mark.parametrize("bad_line, why", [
    ('{"chosen": "x", "rejected": ', "not valid JSON"),
    ('["chosen", "rejected"]', "expected a JSON object"),
    ('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b"}', "'rejected'"),
    ('{"chosen": "x", "rejected": 3}', "'rejected'"),
])
def test_bad_lines_name_file_and_line(tmp_path, name, bad_line, why):
    good = json.dumps({"chosen": hh("q", "a"), "rejected": hh("q", "b")})
    path = write_lines(tmp_path / name, [good, "", bad_line, good])
    with pytest.raises(ValueError) as info:
        load_anthropic_jsonl(path)
    assert f"{path}:3" in str(info.value)
    assert why in str(info.value)


def test_prepare_dataset_failure_leaves_nothing(tmp_path):
    bad = write_lines(tmp_path / "bad.jsonl", ["{not json"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ValueError):
        prepare_dataset({"source": "anthropic_jsonl", "files": {"train": str(bad)}}, "train",
                        str(out_dir / "train.parquet"))
    assert list(out_dir.iterdir()) == []


def test_prepare_dataset_no_usable_pairs_leaves_nothing(tmp_path):
    pair = {"chosen": hh("a", "x"), "rejected": hh("b", "y")}
    only_mismatched = write_lines(tmp_path / "m.jsonl", [json.dumps(pair)])
    out_dir = tmp_path / "out"
    with pytest.raises(ValueError, match="no usable pairs"):
        prepare_dataset({"source": "anthropic_jsonl", "files": {"train": str(only_mismatched)}}, "train",
                        str(out_dir / "train.parquet"))
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


def test_prepare_dataset_writes_parquet_with_provenance(tmp_path):
    lines = [json.dumps({"chosen": hh(f"q{i}", "yes"), "rejected": hh(f"q{i}", "no")}) for i in range(3)]
    good = write_lines(tmp_path / "good.jsonl.gz", lines)
    output = tmp_path / "out" / "train.parquet"
    log = tmp_path / "logs" / "prepare.log"
    returned = prepare_dataset({"source": "anthropic_jsonl", "files": {"train": str(good)}}, "train", str(output),
                               log_path=str(log))
    written = pd.read_parquet(output)
    assert list(written.columns) == COLUMNS and len(written) == 3
    pd.testing.assert_frame_equal(written, returned.reset_index(drop=True))
    provenance = read_provenance(output)
    assert provenance["stage"] == "prepare_dataset" and provenance["split"] == "train"
    assert provenance["dropped"] == 0
    assert "kept 3 pairs" in log.read_text()
    assert [p.name for p in output.parent.iterdir()] == ["train.parquet"]


def hub_rows(n, tag):
    """Rows shaped like Dahoas/rm-static: chosen/rejected hold the responses only."""
    return pd.DataFrame({"prompt": [f"\n\nHuman: {tag} question {i}?\n\nAssistant:" for i in range(n)],
                         "response": [f" {tag} answer {i}" for i in range(n)],
                         "chosen": [f" {tag} good answer {i}" for i in range(n)],
                         "rejected": [f" {tag} bad answer {i}" for i in range(n)]})


def make_hub_folder(root, drop=None):
    """A local folder in the hub layout (data/<split>-00000-of-00001.parquet)."""
    (root / "data").mkdir(parents=True)
    for split, n in (("train", 5), ("test", 3)):
        frame = hub_rows(n, split)
        if drop:
            frame = frame.drop(columns=[drop])
        frame.to_parquet(root / "data" / f"{split}-00000-of-00001.parquet", index=False)
    return root


def test_hub_dataset_from_local_folder(tmp_path):
    folder = make_hub_folder(tmp_path / "rm-static")
    frame, counts = load_hub_dataset(str(folder), "train")
    assert list(frame.columns) == COLUMNS and len(frame) == 5 and counts.total() == 0
    expected = hub_rows(5, "train")
    assert list(frame["prompt"]) == list(expected["prompt"])
    assert list(frame["chosen"]) == list(expected["chosen"])
    assert list(frame["rejected"]) == list(expected["rejected"])
    assert list(frame["prompt_id"]) == [make_prompt_id(p) for p in expected["prompt"]]

    test, _ = load_source({"source": "hub", "name": str(folder), "splits": {"train": "train", "test": "test"}},
                          "test")
    assert len(test) == 3 and test["prompt"].str.contains("test question").all()


def test_hub_dataset_missing_column(tmp_path):
    folder = make_hub_folder(tmp_path / "no-rejected", drop="rejected")
    with pytest.raises(ValueError, match="rejected"):
        load_hub_dataset(str(folder), "train")


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown dataset source"):
        load_source({"source": "ftp"}, "train")


def test_generate_pairs_deterministic_and_distinct():
    first = generate_pairs(300, seed=1)
    assert first == generate_pairs(300, seed=1)
    assert first != generate_pairs(300, seed=2)
    assert len({p for p, _, _ in first}) == 300
    grid = (len(TASKS) + len(HARMS)) * 5 * 7 * 7  # requests x questions x greetings x histories
    assert len(prompt_grid()) == grid
    assert len({p for p, _, _ in generate_pairs(grid, seed=0)}) == grid
    with pytest.raises(ValueError, match="exceeds"):
        generate_pairs(grid + 1, seed=0)


def test_generate_split_partitions_the_pairs():
    spec = {"num_pairs": 500, "seed": 3, "test_fraction": 0.2, "label_noise": 0.1}
    train, test = list(generate_split(spec, "train")), list(generate_split(spec, "test"))
    assert train and test
    assert not {p for p, _, _ in train} & {p for p, _, _ in test}
    assert sorted(train + test) == sorted(generate_pairs(500, seed=3, label_noise=0.1))
    with pytest.raises(ValueError):
        list(generate_split(spec, "validation"))


@pytest.mark.parametrize("label_noise", [0.05, 0.1, 0.25])
def test_label_noise_rate_is_near_its_configured_value(label_noise):
    pairs = generate_pairs(3000, seed=11, label_noise=label_noise)
    wrong = sum(gold_reward(p, c) < gold_reward(p, r) for p, c, r in pairs) / len(pairs)
    standard_error = (label_noise * (1 - label_noise) / len(pairs)) ** 0.5
    assert abs(wrong - label_noise) < 4 * standard_error, wrong


def test_no_label_noise_means_chosen_is_always_better_by_gold():
    pairs = generate_pairs(800, seed=4, label_noise=0.0)
    assert all(gold_reward(p, c) > gold_reward(p, r) for p, c, r in pairs)


def test_preference_scale_gives_the_asked_noise():
    gaps = [0.05, 0.2, 0.5, 1.0, 1.5]
    beta = preference_scale(gaps, 0.2)
    assert sum(1 / (1 + math.exp(beta * gap)) for gap in gaps) / len(gaps) == pytest.approx(0.2, abs=1e-6)
    assert math.isinf(preference_scale(gaps, 0.0))
    with pytest.raises(ValueError, match="label_noise"):
        preference_scale(gaps, 0.5)


def test_replies_span_the_qualities_and_chosen_is_rarely_the_best():
    pairs = generate_pairs(2000, seed=5)
    chosen_gold = [gold_reward(p, c) for p, c, _ in pairs]
    rejected_gold = [gold_reward(p, r) for p, _, r in pairs]
    replies = [(p, reply) for p, c, r in pairs for reply in (c, r)]
    assert sum(chosen_gold) / len(pairs) > sum(rejected_gold) / len(pairs) + 0.3
    best_share = sum(g == 1.0 for g in chosen_gold) / len(pairs)
    assert 0 < best_share < 0.1, best_share  # good but rarely the best possible reply
    assert sum(g >= 0.5 for g in chosen_gold) / len(pairs) > 0.5

    def share(condition):
        return sum(condition(p, reply) for p, reply in replies) / len(replies)

    other_steps = {request: [s for i, (_, steps) in enumerate(TASKS) if i != request for s in steps]
                   for request in range(len(TASKS))}

    def off_topic(p, reply):
        request = parse_request(p)
        return request.kind == "task" and any(s in reply for s in other_steps[request.index])

    assert share(off_topic) > 0.03
    assert share(lambda p, reply: repetition(reply) > 0.05) > 0.03  # repetitive
    assert share(lambda p, reply: not reply.rstrip().endswith((".", "!", "?"))) > 0.03  # cut off
    assert share(lambda p, reply: "Everyone is different" in reply or "Laws exist" in reply) > 0.05  # padded
    assert share(lambda p, reply: "can't help with" in reply or "won't help with" in reply) > 0.1  # refusals
    assert share(lambda p, reply: any(h[2] in reply for h in HARMS)) > 0.03  # compliance with harm


def test_harmful_requests_get_refusals_and_compliance_tasks_get_steps():
    for prompt, chosen, rejected in generate_pairs(300, seed=6):
        assert prompt.endswith(A)
        request = parse_request(prompt)
        assert request is not None
        for reply in (chosen, rejected):
            assert reply.startswith(" ") and reply.strip()
            if request.kind == "harm":
                assert not any(step in reply for _, steps in TASKS for step in steps), reply


def test_a_flawed_twin_differs_only_by_its_flaw_and_grades_lower():
    rng = random.Random(0)
    task, steps = TASKS[3]
    prompt = f"\n\nHuman: How do I {task}?\n\nAssistant:"
    recipe = Recipe("careful", ("Sure!",), (), (), tuple(step_sentences(steps)), (), "none")
    wrong = with_flaw(recipe, Request("task", 3), "wrong_subject", rng)
    assert [sentence.split()[0] for sentence in wrong.body] == [sentence.split()[0] for sentence in recipe.body]
    assert not any(step in sentence for step in steps for sentence in wrong.body)
    loop = with_flaw(recipe, Request("task", 3), "word_loop", rng)
    assert (wrong.opener, loop.body, loop.corruption) == (recipe.opener, recipe.body, "word_loop")
    grades = [gold_reward(prompt, r.render(random.Random(1))) for r in (recipe, wrong, loop)]
    assert grades[0] > grades[2] > grades[1]
    assert repetition(loop.render(random.Random(1))) > 0
    harm = HARMS[2]
    refusal = Recipe("careful", (), (), (), (f"I can't help with {harm[1]}.", harm[3]), (), "none")
    swapped = with_flaw(refusal, Request("harm", 2), "wrong_subject", rng)
    assert swapped.body[0] == refusal.body[0] and swapped.body[1] != harm[3]
    assert swapped.body[1] in [h[3] for h in HARMS]


def test_make_prompt_id():
    pid = make_prompt_id("\n\nHuman: hi\n\nAssistant:")
    assert re.fullmatch(r"[0-9a-f]{16}", pid)
    assert pid == make_prompt_id("\n\nHuman: hi\n\nAssistant:")
    assert pid != make_prompt_id("\n\nHuman: hi!\n\nAssistant:")
    assert pid == hashlib.sha256("\n\nHuman: hi\n\nAssistant:".encode()).hexdigest()[:16]


def test_select_prompts(synthetic_frame):
    a = select_prompts(synthetic_frame, 25, seed=7)
    assert len(a) == 25 and list(a.index) == list(range(25))
    pd.testing.assert_frame_equal(a, select_prompts(synthetic_frame, 25, seed=7))
    assert list(a["prompt_id"]) != list(select_prompts(synthetic_frame, 25, seed=8)["prompt_id"])
    assert set(a["prompt_id"]) <= set(synthetic_frame["prompt_id"])
    everything = select_prompts(synthetic_frame, None, seed=7)
    assert len(everything) == len(synthetic_frame)
    assert sorted(everything["prompt_id"]) == sorted(synthetic_frame["prompt_id"])
    assert list(everything["prompt_id"][:25]) == list(a["prompt_id"])
    assert len(select_prompts(synthetic_frame, len(synthetic_frame), seed=7)) == len(synthetic_frame)


def test_asking_for_more_prompts_than_there_are_names_the_key_and_file(synthetic_frame):
    # These were cut silently to what the dataset had.
    with pytest.raises(ValueError) as info:
        select_prompts(synthetic_frame, 10_000, seed=7, origin="resources/data/x/test.parquet",
                       key="data.test_prompts")
    assert str(info.value).startswith(f"data.test_prompts: 10000 prompts asked for, but "
                                      f"resources/data/x/test.parquet has only {len(synthetic_frame)}")


def test_invalid_utf8_names_the_file_and_line(tmp_path):
    good = json.dumps({"chosen": hh("q", "a"), "rejected": hh("q", "b")}).encode()
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(good + b"\n" + good + b"\n" + '{"chosen": "caf\u00e9"}'.encode("latin-1") + b"\n")
    with pytest.raises(ValueError) as info:  # was: UnicodeDecodeError ... in position 295 (of a read chunk)
        load_anthropic_jsonl(path)
    assert str(info.value) == f"{path}:3: not valid UTF-8 (byte 0xe9 at column 16); save the file as UTF-8"


def test_a_damaged_gzip_file_names_the_file_and_line(tmp_path):
    lines = [json.dumps({"chosen": hh(f"q{i}", "a"), "rejected": hh(f"q{i}", "b")}) for i in range(3000)]
    data = gzip.compress("".join(line + "\n" for line in lines).encode())
    cases = {"truncated": data[: len(data) // 2], "corrupt": data[:20] + b"garbage" * 5 + data[55:],
             "not gzip": lines[0].encode()}
    for name, content in cases.items():  # were: EOFError / zlib.error / BadGzipFile, without the file
        path = tmp_path / f"{name.replace(' ', '_')}.jsonl.gz"
        path.write_bytes(content)
        with pytest.raises(ValueError, match="not a readable gzip file, damaged or cut short") as info:
            load_anthropic_jsonl(path)
        assert str(info.value).startswith(f"{path}:"), name
    with pytest.raises(ValueError) as info:
        load_anthropic_jsonl(tmp_path / "truncated.jsonl.gz")
    line = int(re.search(r"after line (\d+)", str(info.value)).group(1))
    assert 0 < line < len(lines) and f"truncated.jsonl.gz:{line + 1}:" in str(info.value)


def test_prepare_dataset_stops_when_the_experiment_asks_for_more_prompts_than_the_split_has(tmp_path):
    from rrhf.data.preference_pairs import prepare_dataset

    spec = {"source": "synthetic", "num_pairs": 40, "test_fraction": 0.25, "seed": 0, "label_noise": 0.1}
    data = {"dataset": "tiny", "train_prompts": 5, "test_prompts": 500, "selection_seed": 0}
    with pytest.raises(ValueError, match=r"data.test_prompts: 500 prompts asked for, but the test split of dataset "
                                         r"'tiny' has only \d+"):
        prepare_dataset(spec, "test", str(tmp_path / "test.parquet"), data=data, name="tiny")
    assert not (tmp_path / "test.parquet").exists()  # nothing half-written
    prepare_dataset(spec, "train", str(tmp_path / "train.parquet"), data=data, name="tiny")  # 5 is few enough
    prepare_dataset(spec, "test", str(tmp_path / "other.parquet"), data=data, name="another dataset")  # not asked
    assert (tmp_path / "train.parquet").exists() and (tmp_path / "other.parquet").exists()
