"""Prompt shards are disjoint and complete; gathering checks columns and sorts."""

import pandas as pd
import pytest

from rrhf.data.preference_pairs import select_prompts
from rrhf.io import gather_parquet, read_provenance, write_parquet


def test_shards_partition_the_selection(synthetic_frame):
    whole = select_prompts(synthetic_frame, 50, seed=3)
    shards = [select_prompts(synthetic_frame, 50, seed=3, shard=(i, 3)) for i in range(3)]
    assert [len(s) for s in shards] == [17, 17, 16]
    ids = [set(s["prompt_id"]) for s in shards]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == set(whole["prompt_id"])
    with pytest.raises(ValueError, match="shard 3 of 3"):
        select_prompts(synthetic_frame, 50, seed=3, shard=(3, 3))


def test_gather_sorts_and_records_the_shards(tmp_path):
    parts = [pd.DataFrame({"prompt_id": ["b", "b"], "response_index": [1, 0], "reward": [2.0, 1.0]}),
             pd.DataFrame({"prompt_id": ["a"], "response_index": [0], "reward": [3.0]})]
    paths = []
    for i, part in enumerate(parts):
        paths.append(str(tmp_path / f"shard{i}.parquet"))
        write_parquet(part, paths[-1], {"stage": "score_samples", "shard": [i, 2]})
    gathered = gather_parquet(paths, str(tmp_path / "all.parquet"), ["prompt_id", "response_index"])
    assert gathered[["prompt_id", "response_index"]].values.tolist() == [["a", 0], ["b", 0], ["b", 1]]
    provenance = read_provenance(tmp_path / "all.parquet")
    assert provenance["stage"] == "score_samples" and provenance["shards"] == paths


def test_gather_refuses_shards_with_other_columns(tmp_path):
    write_parquet(pd.DataFrame({"prompt_id": ["a"], "response_index": [0]}), tmp_path / "s0.parquet", {})
    write_parquet(pd.DataFrame({"prompt_id": ["b"], "reward": [0.0]}), tmp_path / "s1.parquet", {})
    with pytest.raises(ValueError, match="s1.parquet"):
        gather_parquet([str(tmp_path / "s0.parquet"), str(tmp_path / "s1.parquet")], str(tmp_path / "out.parquet"),
                       ["prompt_id"])
    assert not (tmp_path / "out.parquet").exists()
