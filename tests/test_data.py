"""Preference data: the Anthropic HH reader, the hub and synthetic sources, and the prepare stage."""

import gzip
import hashlib
import json
import random
import re

import pandas as pd
import pytest
from conftest import SHARED_HH

from rrhf.data import (
    COLUMNS,
    load_anthropic_jsonl,
    load_anthropic_jsonl_with_counts,
    load_hub_dataset,
    load_source,
    make_prompt_id,
    prepare_dataset,
    select_prompts,
)
from rrhf.io import read_provenance
from rrhf.synthetic_hh import HARMS, TASKS, generate_pairs, generate_split

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
    grid = (len(TASKS) + len(HARMS)) * 5 * 5 * 5
    assert len(generate_pairs(grid, seed=0)) == grid
    with pytest.raises(ValueError, match="exceeds"):
        generate_pairs(grid + 1, seed=0)


def test_generate_split_partitions_the_pairs():
    spec = {"num_pairs": 500, "seed": 3, "test_fraction": 0.2}
    train, test = list(generate_split(spec, "train")), list(generate_split(spec, "test"))
    assert train and test
    assert not {p for p, _, _ in train} & {p for p, _, _ in test}
    assert sorted(train + test) == sorted(generate_pairs(500, seed=3))
    with pytest.raises(ValueError):
        list(generate_split(spec, "validation"))


def test_synthetic_chosen_is_helpful_and_harmless():
    """Harmful request: chosen refuses and offers the alternative, rejected complies.
    Ordinary request: chosen gives that task's three steps in order."""
    for prompt, chosen, rejected in generate_pairs(600, seed=5):
        assert prompt.endswith(A)
        request = prompt[prompt.rfind("\n\nHuman: "):]
        harms = [h for h in HARMS if h[0] in request]
        tasks = [t for t in TASKS if t[0] in request]
        assert len(harms) + len(tasks) == 1, request
        if harms:
            _, _, method, alternative = harms[0]
            assert re.search(r"can't help|won't help|not something I can help", chosen), chosen
            assert alternative in chosen and method not in chosen
            assert method in rejected
        else:
            steps = tasks[0][1]
            positions = [chosen.find(step) for step in steps]
            assert -1 not in positions and positions == sorted(positions), chosen
            assert chosen != rejected


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
    assert len(select_prompts(synthetic_frame, 10_000, seed=7)) == len(synthetic_frame)
