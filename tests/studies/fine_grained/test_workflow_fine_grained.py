"""Fine-grained RLHF through real Snakemake on the shrunk tiny config: the whole table planned; feedback, the segment
reward models and the annotation page run; the completeness model refused, by name, when every comparison ties."""

import json

import pytest

from rrhf.data.qa_feedback import read_qa_feedback
from rrhf.studies.fine_grained.annotation_page import embedded_records
from workflow_helpers import FAST_OVERRIDES, copy_of, jobs_by_rule, run_snakemake

FINE_GRAINED = {"fine_grained": {
    "feedback": {"prompts": 24, "generation": {"max_new_tokens": 32}},
    "reward_models": {"max_length": 128, "training": {"epochs": 1, "batch_size": 8, "max_length": 128}}}}


@pytest.mark.workflow
def test_fine_grained_stages_run_and_a_tied_completeness_file_is_refused(workdir, tmp_path_factory):
    workdir = copy_of(workdir, tmp_path_factory, "fine_grained")
    overrides = {**FAST_OVERRIDES, **FINE_GRAINED}
    planned = jobs_by_rule(run_snakemake(workdir, "-n", "results/table_fine_grained.csv", overrides=overrides).stdout)
    assert {rule: planned.get(rule) for rule in ("collect_fine_grained_feedback", "train_segment_reward_model",
                                                 "train_fine_grained_ppo", "evaluate_fine_grained",
                                                 "table_fine_grained")} == {
        "collect_fine_grained_feedback": 1, "train_segment_reward_model": 3, "train_fine_grained_ppo": 5,
        "evaluate_fine_grained": 7, "table_fine_grained": 1}  # FG-PPO and 4 variants; 7 rows judged
    run_snakemake(workdir, "results/fine_grained/annotation.html", "results/fine_grained/reward_models/relevance",
                  "results/fine_grained/reward_models/factuality", overrides=overrides)
    results = workdir / "results"
    records = read_qa_feedback(results / "fine_grained" / "feedback.json")
    assert len(records) == 24 and all(len(record.predictions) == 4 for record in records)
    assert len(read_qa_feedback(results / "fine_grained" / "completeness.json")) == 24
    page = (results / "fine_grained" / "annotation.html").read_text()
    assert embedded_records(page) == [record.as_json() for record in records]
    for kind in ("relevance", "factuality"):
        metrics = json.loads((results / "fine_grained" / "reward_models" / kind / "metrics.json").read_text())
        assert metrics["kind"] == kind and metrics["held_out_replies"] == 5  # 0.2 of 24 questions
        assert metrics["held_out_segment_replies"] == 20 and 0 <= metrics["held_out_accuracy"] <= 1
    # The shrunk policy covers no step of any request: every completeness comparison ties, and the stage says so
    # (naming the key to raise) and leaves no model behind.
    failed = run_snakemake(workdir, "results/fine_grained/reward_models/completeness", overrides=overrides,
                           check=False)
    assert failed.returncode != 0
    assert "hold 0 comparisons (ties are 0)" in failed.stderr and "fine_grained.feedback.prompts" in failed.stderr
    assert not (results / "fine_grained" / "reward_models" / "completeness").exists()
