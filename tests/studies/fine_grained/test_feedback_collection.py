"""Fine-grained feedback on a policy's own replies (qa-feedback layout) and the reward models trained on it."""

import random

import pytest

from rrhf.data.annotators import AnnotatorBias
from rrhf.data.gold_reward import gold_reward
from rrhf.data.preference_pairs import prepare_dataset, select_subset
from rrhf.data.qa_feedback import FeedbackRecord, SpanError, read_qa_feedback, write_qa_feedback
from rrhf.io import read_json, read_parquet
from rrhf.studies.fine_grained.feedback_collection import (
    collect_feedback,
    completeness_preferences,
    holistic_preferences,
)
from rrhf.studies.fine_grained.labels import coverage, span_errors
from rrhf.studies.fine_grained.reward_models import train_segment_reward_model

BREAD = "\n\nHuman: How do I bake bread?\n\nAssistant:"
SPEC = {"source": "synthetic", "num_pairs": 300, "test_fraction": 0.1, "seed": 3, "label_noise": 0.1}
EXCLUDED = {"limit": 20, "seed": 1234, "key": "data.train_prompts"}
GOOD = " First, mix flour, yeast and salt for the bread. Then knead the dough for ten minutes."
HALF = " First, mix flour, yeast and salt for the bread."
UNKNOWN = "\n\nHuman: Tell me about baking.\n\nAssistant:"


def test_holistic_preferences_follow_gold_without_noise_and_tie_identical_replies():
    replies = [GOOD, HALF, GOOD, " Whatever."]
    preferences = holistic_preferences(BREAD, replies, gold_reward, 0.0, AnnotatorBias.coerce(None), random.Random(0))
    golds = [gold_reward(BREAD, reply) for reply in replies]
    assert golds[0] > golds[1] > golds[3]
    assert preferences == [1, 0, 1, 2, 1, 1]  # 1vs2, 1vs3 (the same text), 1vs4, 2vs3, 2vs4, 3vs4


def test_completeness_comparisons_follow_coverage_and_noise_turns_them_round():
    record = FeedbackRecord(BREAD, [GOOD, HALF, GOOD, " Whatever."])
    assert [coverage(BREAD, reply) for reply in record.predictions][:2] == [0.5, 0.25]
    assert completeness_preferences(record, 0.0, random.Random(0)) == [1, 0, 1, 2, 1, 1]
    assert completeness_preferences(record, 1.0, random.Random(0)) == [2, 0, 2, 1, 2, 2]


@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.parquet"
    prepare_dataset(SPEC, "train", str(path))
    return path


def test_collected_feedback_is_qa_feedback_on_the_policys_own_replies(train_split, tiny_lm_dir, tmp_path):
    feedback = {"prompts": 12, "samples": 4, "label_noise": 0.0, "seed": 3,
                "generation": {"max_new_tokens": 10, "top_k": 20, "temperature": 0.7}}
    records = collect_feedback(str(tiny_lm_dir), str(train_split), str(tmp_path / "f.json"), str(tmp_path / "c.json"),
                               feedback, EXCLUDED)
    assert read_qa_feedback(tmp_path / "f.json") == records and len(records) == 12
    excluded = set(select_subset(read_parquet(train_split, ["prompt_id", "prompt"]), EXCLUDED, origin="t")["prompt"])
    assert not {r.question for r in records} & excluded
    completeness = read_qa_feedback(tmp_path / "c.json")
    for record, compared in zip(records, completeness):
        assert len(record.predictions) == 4 and record.errors == span_errors(record.question, record.predictions[0])
        assert compared.predictions == record.predictions and compared.errors == record.errors
        assert compared.preference == completeness_preferences(record, 0.0, random.Random(0))
        assert record.corrected and record.gold == record.corrected  # gold's best reply: the reference
    again = collect_feedback(str(tiny_lm_dir), str(train_split), str(tmp_path / "g.json"), str(tmp_path / "d.json"),
                             feedback, EXCLUDED)
    assert (tmp_path / "g.json").read_bytes() == (tmp_path / "f.json").read_bytes() and again == records


def test_feedback_needs_a_gold_reward_before_any_model_loads(tmp_path):
    import pandas as pd

    from rrhf.io import write_parquet

    write_parquet(pd.DataFrame({"prompt_id": ["a"], "prompt": ["q"], "chosen": ["x"], "rejected": ["y"]}),
                  tmp_path / "train.parquet", {"stage": "test"})
    with pytest.raises(ValueError, match="fine_grained.feedback: .* no gold reward"):
        collect_feedback(str(tmp_path / "missing-model"), str(tmp_path / "train.parquet"), str(tmp_path / "f.json"),
                         str(tmp_path / "c.json"), {"prompts": 2}, EXCLUDED)


def test_too_many_prompts_asked_for_names_the_key_before_any_model_loads(train_split, tmp_path):
    with pytest.raises(ValueError, match=r"^fine_grained\.feedback\.prompts: 5000 prompts asked for"):
        collect_feedback(str(tmp_path / "missing-model"), str(train_split), str(tmp_path / "f.json"),
                         str(tmp_path / "c.json"), {"prompts": 5000}, EXCLUDED)


def marked_records(count: int) -> list[FeedbackRecord]:
    """Replies of two or three sentences to a question the tiny world does not know (so the file's labels are
    the truth); every sentence with "banana" in it is Irrelevant."""
    rng = random.Random(1)
    records = []
    for index in range(count):
        sentences = [rng.choice(["Mix the flour well.", "Bake it for an hour.", "I like a banana a lot.",
                                 "Let it cool down.", "A banana is yellow."]) for _ in range(rng.choice([2, 3]))]
        reply = " " + " ".join(sentences)
        errors, start = [], 1
        for sentence in sentences:
            if "banana" in sentence:
                errors.append(SpanError("Irrelevant", start, start + len(sentence)))
            start += len(sentence) + 1
        records.append(FeedbackRecord(UNKNOWN, [reply, reply, " No.", " No."], errors=errors,
                                      preference=[1, 1, 1, 1, 1, 0]))
    return records


def test_a_segment_reward_model_learns_its_kind_and_reports_held_out_f1(tiny_lm_dir, tmp_path):
    write_qa_feedback(marked_records(160), tmp_path / "feedback.json")
    spec = {"init": str(tiny_lm_dir), "max_length": 64,
            "training": {"epochs": 6, "learning_rate": 3e-3, "batch_size": 16, "seed": 0, "warmup_ratio": 0.0}}
    metrics = train_segment_reward_model("relevance", str(tiny_lm_dir), str(tmp_path / "feedback.json"),
                                         str(tmp_path / "relevance"), spec, 0.25, {})
    assert metrics["held_out_replies"] == 40 and metrics["train_replies"] == 120
    assert metrics["held_out_error_f1"] > 0.9 and metrics["held_out_accuracy"] > 0.9
    assert read_json(tmp_path / "relevance" / "metrics.json") == metrics
    write_qa_feedback(marked_records(16), tmp_path / "few.json")
    comparisons = train_segment_reward_model("completeness", str(tiny_lm_dir), str(tmp_path / "few.json"),
                                             str(tmp_path / "completeness"), {**spec, "training": {"epochs": 1}},
                                             0.25, {})
    assert comparisons["train_pairs"] == 12 * 5 and comparisons["held_out_pairs"] == 4 * 5
    assert comparisons["std"] > 0 and set(comparisons) >= {"mean", "std", "held_out_pair_accuracy"}
    with pytest.raises(ValueError, match="kind 'style'"):
        train_segment_reward_model("style", str(tiny_lm_dir), str(tmp_path / "feedback.json"), str(tmp_path / "x"),
                                   spec, 0.25, {})
