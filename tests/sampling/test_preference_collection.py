"""On-policy preference pairs: the policies' own sampled replies, labelled by the dataset's annotators."""

import pandas as pd
import pytest

from rrhf.data.gold_reward import gold_reward
from rrhf.data.preference_pairs import gold_agreement, prepare_dataset, select_subset
from rrhf.io import read_parquet, read_provenance
from rrhf.sampling.preference_collection import collect_preferences, collection_prompts, pair_rows

SPEC = {"source": "synthetic", "num_pairs": 300, "test_fraction": 0.1, "seed": 3, "label_noise": 0.1,
        "annotator_bias": {"enthusiasm": 0.5, "length": 0.0}}
EXCLUDED = {"limit": 20, "seed": 1234, "key": "data.train_prompts"}


@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.parquet"
    prepare_dataset(SPEC, "train", str(path))
    return path


def test_collection_prompts_leave_out_the_training_prompts_and_name_the_key():
    train = pd.DataFrame({"prompt_id": [f"p{i:02d}" for i in range(10)], "prompt": [f"q{i}" for i in range(10)]})
    excluded = train.iloc[[1, 4, 7]]
    drawn = collection_prompts(train, excluded, 5, seed=0)
    assert len(drawn) == 5 and not set(drawn["prompt_id"]) & {"p01", "p04", "p07"}
    assert list(drawn["prompt_id"]) == sorted(drawn["prompt_id"])
    assert drawn.equals(collection_prompts(train, excluded, 5, seed=0))
    assert not drawn.equals(collection_prompts(train, excluded, 5, seed=1))
    with pytest.raises(ValueError, match=r"on_policy\.prompts: 8 prompts .* only 7"):
        collection_prompts(train, excluded, 8, seed=0)


def test_pair_rows_cut_the_replies_grade_them_and_drop_identical_twins():
    prompt = "\n\nHuman: How do I bake bread?\n\nAssistant:"
    prompts = pd.DataFrame({"prompt_id": ["a", "b"], "prompt": [prompt, prompt]})
    replies = [[" Sure! Bake it.\n\nHuman: thanks", " Whatever."], [" Same.", " Same. "]]
    rows = pair_rows(prompts, replies, "instruct", gold_reward)
    assert len(rows) == 1
    assert rows[0]["first"] == " Sure! Bake it." and rows[0]["policy"] == "instruct"
    assert rows[0]["first_gold"] == gold_reward(prompt, " Sure! Bake it.")


def test_collect_preferences_samples_each_policy_and_labels_with_the_dataset_annotators(
        train_split, tiny_lm_dir, tmp_path):
    output = tmp_path / "pairs.parquet"
    on_policy = {"policies": ["a", "b"], "prompts": 24, "temperature": 1.0, "top_p": 1.0, "max_new_tokens": 12,
                 "batch_size": 8, "seed": 5}
    frame = collect_preferences({"a": str(tiny_lm_dir), "b": str(tiny_lm_dir)}, str(train_split), str(output),
                                on_policy, EXCLUDED)
    written = read_parquet(output, list(frame.columns))
    assert written.equals(frame)
    assert 0 < len(frame) <= 24 and set(frame["policy"]) <= {"a", "b"}
    assert (frame["chosen"] != frame["rejected"]).all()
    excluded = select_subset(read_parquet(train_split, ["prompt_id", "prompt"]), EXCLUDED, origin="test")
    assert len(excluded) == 20 and not set(frame["prompt_id"]) & set(excluded["prompt_id"])
    for row in frame.itertuples():
        assert row.chosen_gold == gold_reward(row.prompt, row.chosen)
        assert row.rejected_gold == gold_reward(row.prompt, row.rejected)
    provenance = read_provenance(output)
    assert provenance["on_policy"]["prompts"] == 24 and 0 <= provenance["labels_agreeing_with_gold"] <= 1
    # the agreement from the stored golds is what grading every reply again gives
    assert provenance["labels_agreeing_with_gold"] == gold_agreement(frame, "synthetic")
    again = collect_preferences({"a": str(tiny_lm_dir), "b": str(tiny_lm_dir)}, str(train_split),
                                str(tmp_path / "again.parquet"), on_policy, EXCLUDED)
    assert again.equals(frame)  # seeded: the same config gives the same pairs


def test_a_dataset_without_gold_is_refused_before_sampling(tmp_path, tiny_lm_dir):
    from rrhf.io import write_parquet

    frame = pd.DataFrame({"prompt_id": ["x"], "prompt": ["\n\nHuman: hi\n\nAssistant:"], "chosen": [" a"],
                          "rejected": [" b"]})
    path = tmp_path / "train.parquet"
    write_parquet(frame, path, {"stage": "prepare_dataset", "dataset": {"source": "hub"}})
    with pytest.raises(ValueError, match="no gold reward"):
        collect_preferences({"a": str(tiny_lm_dir)}, str(path), str(tmp_path / "out.parquet"),
                            {"policies": ["a"]}, EXCLUDED)
