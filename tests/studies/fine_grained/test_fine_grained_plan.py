"""Fine-grained RLHF in the plan: its setting names, what each FG-PPO row trains with, its files in each replicate,
the checks' messages, and the findings' files of its metrics."""

import re

import pytest

from plan_helpers import study_problems, tiny_plan
from rrhf.plan.settings import (
    evaluated_settings_pattern,
    parse_setting,
    setting_problem,
    trained_settings_pattern,
)
from rrhf.plan.table_rows import TableRow
from rrhf.studies.findings.claims import claim_file


@pytest.mark.parametrize("name, variant", [("FG-PPO", None), ("FG-PPO-no-relevance", "no-relevance"),
                                           ("FG-PPO-shifted2", "shifted2")])
def test_fine_grained_setting_names(name, variant):
    setting = parse_setting(name, {})
    assert setting.kind == "fine_grained" and setting.variant == variant and setting.is_trained
    assert not setting.trains_with_rrhf


@pytest.mark.parametrize("name", ["FG-PPO-", "FG-PPO-Shifted", "FG-PPO_x", "FG-ppo"])
def test_names_that_are_no_fine_grained_setting(name):
    assert parse_setting(name, {}) is None and "FG-PPO-{variant}" in setting_problem(name, {})


def test_evaluated_and_trained_setting_patterns_take_fine_grained_ppo():
    evaluated, trained = evaluated_settings_pattern(["DP"]), trained_settings_pattern(["DP"])
    for name, is_evaluated, is_trained in (("FG-PPO", True, True), ("FG-PPO-shifted", True, True),
                                           ("none", True, False), ("IP-1", True, False), ("IP-2", True, True),
                                           ("PPO-noKL", True, True), ("best-of-4", False, False), ("XP", False, False)):
        assert bool(re.fullmatch(evaluated, name)) == is_evaluated, name
        assert bool(re.fullmatch(trained, name)) == is_trained, name


def test_what_each_fine_grained_row_trains_with():
    plan = tiny_plan()
    study = plan.studies["fine_grained"]
    ppo = study.ppo_for("FG-PPO", 0)
    assert ppo["kl"] == {**plan.config["ppo"]["kl"], "controller": "fixed", "init_coef": 0.3}  # fine_grained.kl_coef
    assert {k: v for k, v in ppo.items() if k != "kl"} == {k: v for k, v in plan.ppo_for(0).items() if k != "kl"}
    assert study.weights_for("FG-PPO")["weights"] == {"relevance": 0.3, "factuality": 0.5, "completeness": 0.3}
    assert study.weights_for("FG-PPO-no-factuality")["weights"] == {"relevance": 0.3, "factuality": 0,
                                                                    "completeness": 0.3}
    assert study.weights_for("FG-PPO-shifted")["weights"] == {"relevance": 0.5, "factuality": 0.3,
                                                              "completeness": 0.3}
    holistic_kl = tiny_plan(lambda c: c["fine_grained"].update(kl_coef=None)).studies["fine_grained"]
    assert holistic_kl.ppo_for("FG-PPO", 0) == plan.ppo_for(0, "PPO")  # kl_coef null: the ppo block's own controller


def test_fine_grained_files_in_each_replicate():
    plan = tiny_plan()
    study = plan.studies["fine_grained"]
    assert study.file("feedback.json") == "results/fine_grained/feedback.json"
    assert study.reward_models(2) == {kind: f"results/replicate2/fine_grained/reward_models/{kind}"
                                           for kind in ("relevance", "factuality", "completeness")}
    assert study.evaluation("instruct", "none", "metrics.json", 1) == \
        "results/replicate1/fine_grained/eval/instruct/none/metrics.json"
    seeds = [study.reward_model_build(kind, 0)["training"]["seed"] for kind in ("relevance", "factuality",
                                                                               "completeness")]
    assert seeds == [21, 22, 23] and study.reward_model_build("relevance", 1)["training"]["seed"] != 21
    assert study.feedback(0)["seed"] == 0 and study.feedback(1)["seed"] != 0
    assert study.init(0) == ("resources/models/base", ["resources/models/base"])
    only_training = tiny_plan(lambda c: c.update(reseeded_stages=["training"]))
    only_training = only_training.studies["fine_grained"]
    assert only_training.file("feedback.json", 1) == "results/fine_grained/feedback.json"  # shared
    assert only_training.reward_models(1)["relevance"] == "results/replicate1/fine_grained/reward_models/relevance"


def test_each_fine_grained_check_names_its_key():
    assert study_problems(tiny_plan(), "fine_grained") == []
    unknown = study_problems(tiny_plan(lambda c: c["fine_grained"]["variants"].pop("shifted")), "fine_grained")
    assert unknown == ["tables.yaml: table_fine_grained row 7: FG-PPO-shifted: 'shifted' is not one of "
                       "fine_grained.variants (no-completeness, no-factuality, no-relevance)"]
    absent = study_problems(tiny_plan(lambda c: c.pop("fine_grained")), "fine_grained")
    assert len(absent) == 5 and all("needs the config's `fine_grained` block" in p for p in absent)
    role = study_problems(tiny_plan(lambda c: c["fine_grained"].update(policy="LLaMA")), "fine_grained")
    assert role[0].endswith("FG-PPO trains fine_grained.policy (LLaMA), not Alpaca")

    def real_data(config):
        config["datasets"]["synthetic_hh"] = {"source": "anthropic_jsonl", "files": {"train": "a", "test": "b"}}
    assert any(p.startswith("fine_grained.feedback.file: the dataset 'synthetic_hh' has no gold reward")
               for p in study_problems(tiny_plan(real_data), "fine_grained"))
    with_file = study_problems(tiny_plan(lambda c: (real_data(c), c["fine_grained"]["feedback"].update(
        file="people.json"))), "fine_grained")
    assert with_file == []
    alone = study_problems(tiny_plan(lambda c: c["fine_grained"]["feedback"].update(completeness_file="c")),
                           "fine_grained")
    assert alone == ["fine_grained.feedback.completeness_file: given without fine_grained.feedback.file"]


def test_claims_on_fine_grained_metrics_read_the_segments_of_their_rows():
    plan = tiny_plan()
    row = TableRow("table_fine_grained", 3, "Alpaca", "FG-PPO", "FG-PPO")
    assert claim_file(plan, row, "factual_error_rate", 1) == \
        "results/replicate1/fine_grained/eval/instruct/FG-PPO/segments.parquet"
    assert claim_file(plan, row, "gold_reward", 0) == "results/eval/instruct/FG-PPO/generations.parquet"
    findings = plan.studies["findings"]
    assert findings.problems() == []  # reads config/findings.yaml into its claims, checked against the tables
    assert {"fine-grained-fewer-factual-errors", "weights-trade-relevance"} <= {claim.id for claim in findings.claims}


def test_all_leaves_the_fine_grained_table_out_until_peoples_feedback_is_there(tmp_path):
    notes = []
    study = tiny_plan().studies["fine_grained"]
    assert study.targets(notes.append) == ["results/table_fine_grained.csv", "results/fine_grained_reward_models.csv",
                                           "results/fine_grained/annotation.html"] and notes == []
    people = tmp_path / "people.json"
    waiting = tiny_plan(lambda c: c["fine_grained"]["feedback"].update(file=str(people))).studies["fine_grained"]
    assert waiting.targets(notes.append) == [] and str(people) in notes[0]
    people.write_text("[]")
    assert waiting.targets(notes.append) != [] and len(notes) == 1
