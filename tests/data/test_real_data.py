"""Real HH data for config/real.yaml: one file divided into seeded train and held-out test pairs, the Hub's
Anthropic/hh-rlhf layout (chosen and rejected only), and putting the file where `make real` reads it."""

import gzip
import json

import pytest
import yaml
from conftest import SHARED_HH

from rrhf.data.hh_file import main as hh_file_main
from rrhf.data.hh_file import place_hh_file
from rrhf.data.preference_pairs import held_out_split, load_anthropic_jsonl, load_hub_dataset, load_source
from rrhf.plan.plan import Plan
from rrhf.studies.registry import STUDIES
from workflow_helpers import REPO

needs_hh = pytest.mark.skipif(not SHARED_HH.is_file(), reason=f"no HH file at {SHARED_HH}")


def write_hh(path, pairs):
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for prompt, chosen, rejected in pairs:
            handle.write(json.dumps({"chosen": prompt + chosen, "rejected": prompt + rejected}) + "\n")
    return path


def small_hh(path, count=40):
    return write_hh(path, [(f"\n\nHuman: question {i}?\n\nAssistant:", f" good {i}", f" bad {i}")
                           for i in range(count)])


def test_a_single_file_divides_into_disjoint_seeded_splits(tmp_path):
    frame = load_anthropic_jsonl(small_hh(tmp_path / "hh.jsonl.gz"))
    train, test = (held_out_split(frame, split, 0.25, seed=3) for split in ("train", "test"))
    assert len(test) == 10 and len(train) == 30
    assert set(train["prompt_id"]).isdisjoint(test["prompt_id"])
    assert set(train["prompt_id"]) | set(test["prompt_id"]) == set(frame["prompt_id"])
    assert held_out_split(frame, "test", 0.25, seed=3).equals(test)  # the same seed, the same pairs
    assert set(held_out_split(frame, "test", 0.25, seed=4)["prompt_id"]) != set(test["prompt_id"])
    with pytest.raises(ValueError, match="train and test only"):
        held_out_split(frame, "validation", 0.25, seed=3)


def test_the_config_key_file_reads_one_file_for_both_splits(tmp_path):
    spec = {"source": "anthropic_jsonl", "file": str(small_hh(tmp_path / "hh.jsonl.gz")), "test_fraction": 0.1,
            "seed": 0}
    (train, _), (test, _) = load_source(spec, "train"), load_source(spec, "test")
    assert (len(train), len(test)) == (36, 4)


@needs_hh
def test_the_real_file_splits_as_config_real_says():
    spec = yaml.safe_load((REPO / "config" / "real.yaml").read_text())["datasets"]["hh"]
    spec = {**spec, "file": str(SHARED_HH)}
    (train, counts), (test, _) = load_source(spec, "train"), load_source(spec, "test")
    assert len(train) + len(test) + counts.total() == 2312
    assert len(test) == round(spec["test_fraction"] * (len(train) + len(test)))
    assert set(train["prompt_id"]).isdisjoint(test["prompt_id"])
    assert test["prompt"].str.endswith("\n\nAssistant:").all()


def test_the_hub_layout_without_a_prompt_column_takes_the_shared_prefix(tmp_path):
    folder = tmp_path / "hh-rlhf" / "harmless-base"
    folder.mkdir(parents=True)
    pairs = [(f"\n\nHuman: q{i}?\n\nAssistant:", f" yes {i}", f" no {i}") for i in range(12)]
    rows = [{"chosen": p + c, "rejected": p + r} for p, c, r in pairs]
    rows.append({"chosen": "\n\nHuman: a?\n\nAssistant: x", "rejected": "\n\nHuman: b?\n\nAssistant: y"})
    (folder / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    frame, counts = load_hub_dataset(str(tmp_path / "hh-rlhf"), "test", data_dir="harmless-base")
    assert len(frame) == 12 and counts.mismatched_prompt == 1
    assert list(frame["prompt"])[:2] == [pairs[0][0], pairs[1][0]]
    assert list(frame["chosen"])[:2] == [" yes 0", " yes 1"]
    spec = {"source": "hub", "name": str(tmp_path / "hh-rlhf"), "data_dir": "harmless-base", "split": "test",
            "revision": None, "test_fraction": 0.25, "seed": 0}
    assert len(load_source(spec, "test")[0]) == 3 and len(load_source(spec, "train")[0]) == 9


def test_a_hub_dataset_with_neither_layout_is_refused_by_its_columns(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['prompt', 'chosen', 'rejected'\]"):
        load_hub_dataset(str(folder), "train")


def real_config(**datasets):
    config = yaml.safe_load((REPO / "config" / "real.yaml").read_text())
    config["datasets"]["hh"] = {**config["datasets"]["hh"], **datasets}
    return config


def plan_problems_of(config):
    """The problems Plan.from_config would raise with, as a list."""
    with pytest.raises(ValueError) as raised:
        Plan.from_config(config, REPO, STUDIES)
    return [line.strip() for line in str(raised.value).splitlines()[1:]]


def test_a_missing_file_is_named_before_any_job(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    problems = plan_problems_of(real_config())
    assert any(p.startswith("datasets.hh.file: data/hh-rlhf-harmless-base-test.jsonl.gz does not exist")
               and "make real HH_FILE=PATH" in p for p in problems)
    both = real_config(files={"train": "a", "test": "b"})
    assert any("either `files`" in p for p in plan_problems_of(both))


def test_the_file_is_linked_where_the_config_reads_it(tmp_path, capsys):
    source = small_hh(tmp_path / "mine.jsonl.gz")
    destination = tmp_path / "real" / "data" / "hh.jsonl.gz"
    assert hh_file_main([str(destination), "--from", str(source)]) == 0
    assert destination.is_symlink() and destination.resolve() == source.resolve()
    assert "HH data:" in capsys.readouterr().out
    assert place_hh_file(destination) == destination  # already there: kept, nothing downloaded
    assert hh_file_main([str(destination), "--from", str(tmp_path / "missing.jsonl.gz")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_without_a_file_or_the_hub_it_says_where_to_get_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    assert hh_file_main([str(tmp_path / "data" / "hh.jsonl.gz")]) == 1
    error = capsys.readouterr().err
    assert "make real HH_FILE=PATH/test.jsonl.gz" in error and "hh-rlhf" in error
    assert not (tmp_path / "data" / "hh.jsonl.gz").exists()
