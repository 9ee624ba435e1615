"""The qa-feedback loader (rrhf.data.qa_feedback) on a file written by hand in FineGrainedRLHF's layout."""

import json

import pytest

from rrhf.data.qa_feedback import (
    FeedbackRecord,
    SpanError,
    feedback_frames,
    preference_pairs,
    read_qa_feedback,
    write_qa_feedback,
)

FIRST = "Bloom came out in 2018. It has ten songs. It has ten songs. Sivan sings on it, and so does Grande."
# Written from the dataset's documented fields (tasks/qa_feedback/data/README.md of allenai/FineGrainedRLHF),
# not by this project's writer, so reading does not depend on writing.
ORIGINAL_LAYOUT = """[
  {
    "question": "When does bloom by troye sivan come out?",
    "passages": [["Bloom (album)", "Bloom is the second album by Troye Sivan.", "It was released on 31 August 2018."]],
    "gold": "Bloom was released on 31 August 2018.",
    "prediction 1": "%s",
    "prediction 2": "Bloom was released on 31 August 2018.",
    "prediction 3": "Bloom is an album.",
    "prediction 4": "It came out in August.",
    "feedback": {
      "errors": [
        {"error type": "Redundant", "explanation": "It has ten songs. ", "start": 42, "end": 59},
        {"error type": "Wrong-Grounding", "explanation": "{\\"passage_id\\":1,\\"sentence_id\\":[2]}",
         "start": 79, "end": 98}
      ],
      "missing-info": [{"error type": "Missing-Answer", "passage_id": 1, "sentence_id": [2]}],
      "corrected-prediction": "Bloom came out on 31 August 2018."
    },
    "preference": [2, 1, 2, 1, 2, 0]
  },
  {
    "question": "Who wrote Hamlet?",
    "passages": [],
    "gold": "William Shakespeare wrote Hamlet.",
    "prediction 1": "Shakespeare wrote it.",
    "prediction 2": "Hamlet is a play.",
    "prediction 3": "Shakespeare.",
    "prediction 4": "Marlowe wrote Hamlet.",
    "feedback": {"errors": [], "missing-info": [], "corrected-prediction": "Shakespeare wrote it."},
    "preference": [0, 0, 1, 0, 0, 0]
  }
]
""" % FIRST


@pytest.fixture
def original_file(tmp_path):
    path = tmp_path / "dev_feedback.json"
    path.write_text(ORIGINAL_LAYOUT)
    return path


def test_reads_the_original_layout(original_file):
    records = read_qa_feedback(original_file)
    assert [r.question for r in records] == ["When does bloom by troye sivan come out?", "Who wrote Hamlet?"]
    first = records[0]
    assert first.predictions[0] == FIRST and first.predictions[3] == "It came out in August."
    assert [(e.error_type, FIRST[e.start:e.end]) for e in first.errors] == [
        ("Redundant", "It has ten songs."), ("Wrong-Grounding", "and so does Grande.")]
    assert [(m.error_type, m.passage_id, m.sentence_ids) for m in first.missing] == [("Missing-Answer", 1, (2,))]
    assert first.corrected == "Bloom came out on 31 August 2018."
    assert first.passages[0][0] == "Bloom (album)"


def test_preferences_follow_the_documented_pair_order(original_file):
    first, second = read_qa_feedback(original_file)
    # [2, 1, 2, 1, 2, 0] over 1vs2, 1vs3, 1vs4, 2vs3, 2vs4, 3vs4: 1 prefers the pair's first, 2 its second.
    assert preference_pairs(first) == [(2, 1), (1, 3), (4, 1), (2, 3), (4, 2)]
    assert preference_pairs(second) == [(1, 4)]


def test_round_trip_keeps_the_file(original_file, tmp_path):
    records = read_qa_feedback(original_file)
    written = tmp_path / "out" / "feedback.json"
    write_qa_feedback(records, written)
    assert json.loads(written.read_text()) == json.loads(original_file.read_text())
    assert read_qa_feedback(written) == records
    assert list(json.loads(written.read_text())[0]) == ["question", "passages", "gold", "prediction 1",
                                                         "prediction 2", "prediction 3", "prediction 4",
                                                         "feedback", "preference"]


def test_frames_give_prompts_replies_spans_and_pairs(original_file):
    frames = feedback_frames(read_qa_feedback(original_file))
    replies, spans, pairs = frames["replies"], frames["spans"], frames["preferences"]
    assert len(replies) == 8 and set(replies["prediction"]) == {1, 2, 3, 4}
    assert list(spans["text"]) == ["It has ten songs.", "and so does Grande."]
    assert list(spans["error_type"]) == ["Redundant", "Wrong-Grounding"]
    assert len(pairs) == 6
    hamlet = pairs[pairs["record"] == 1].iloc[0]
    assert (hamlet["chosen"], hamlet["rejected"]) == ("Shakespeare wrote it.", "Marlowe wrote Hamlet.")


def test_a_record_built_in_code_writes_and_reads_back(tmp_path):
    record = FeedbackRecord(question="How do I bake bread?", predictions=["Mix. Knead. Bake.", "b", "c", "d"],
                            errors=[SpanError("Irrelevant", 5, 11)], preference=[1, 1, 1, 0, 0, 2])
    path = tmp_path / "tiny.json"
    write_qa_feedback([record], path)
    assert read_qa_feedback(path) == [record]


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["feedback"]["errors"][0].update({"error type": "Boring"}),
     r"record 0 feedback.errors\[0\]: unknown error type 'Boring'"),
    (lambda r: r["feedback"]["errors"][0].update({"end": 500}),
     r"record 0 feedback.errors\[0\]: span 42:500 is not within prediction 1"),
    (lambda r: r["feedback"]["missing-info"][0].update({"error type": "Missing-Joke"}),
     r"record 0 feedback.missing-info\[0\]: unknown missing-info type 'Missing-Joke'"),
    (lambda r: r.update({"preference": [1, 2]}), r"record 0: field 'preference' should be 6 values"),
    (lambda r: r.update({"preference": [1, 2, 3, 0, 0, 0]}), r"record 0: field 'preference' should be 6 values"),
    (lambda r: r.pop("prediction 3"), r"record 0: missing field 'prediction 3'"),
    (lambda r: r.update({"question": 7}), r"record 0: field 'question' should be str, not int"),
])
def test_bad_records_name_the_file_record_and_field(original_file, edit, message):
    document = json.loads(original_file.read_text())
    edit(document[0])
    original_file.write_text(json.dumps(document))
    with pytest.raises(ValueError, match=message) as error:
        read_qa_feedback(original_file)
    assert str(original_file) in str(error.value)


def test_a_file_that_is_not_a_list_of_records(tmp_path):
    path = tmp_path / "feedback.json"
    path.write_text('{"question": "x"}')
    with pytest.raises(ValueError, match="a JSON list of records, not dict"):
        read_qa_feedback(path)
    path.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_qa_feedback(path)
