"""RRHF's successors in the plan: the {method}@{setting} grammar, the files a method's training reads, the
`methods` block and its checks, and the plan agreeing with the training code's list of methods."""

import re

import pytest

from plan_helpers import study_problems, tiny_plan
from rrhf.plan.checks import plan_problems
from rrhf.plan.settings import (
    METHOD_NAMES,
    evaluated_settings_pattern,
    parse_setting,
    setting_problem,
    trained_settings_pattern,
)
from rrhf.studies.preference_methods.trainer import METHODS

NAMED = ["BP", "DP", "P", "D", "SP", "BP-norank"]


@pytest.mark.parametrize("name, method, training_set", [("DPO@DP", "DPO", "DP"), ("R-DPO@BP", "R-DPO", "BP"),
                                                         ("KTO@BP-norank", "KTO", "BP-norank")])
def test_method_settings_parse(name, method, training_set):
    setting = parse_setting(name, NAMED)
    assert (setting.kind, setting.method, setting.training_set) == ("method", method, training_set)
    assert setting.is_trained and not setting.trains_with_rrhf
    for pattern in (evaluated_settings_pattern(NAMED), trained_settings_pattern(NAMED)):
        assert re.fullmatch(pattern, name)


@pytest.mark.parametrize("name, reason", [
    ("XPO@DP", "'XPO' is not one of the methods DPO, R-DPO, IPO, SLiC, SimPO, KTO, ORPO"),
    ("DPO@OP-2", "a method trains on a named setting's training set, and 'OP-2' is none of"),
    ("DPO@", "and '' is none of")])
def test_impossible_method_settings_say_why(name, reason):
    assert parse_setting(name, NAMED) is None
    assert reason in setting_problem(name, NAMED)
    assert not re.fullmatch(trained_settings_pattern(NAMED), name)


def test_the_plan_and_the_training_code_list_the_same_methods():
    assert set(METHOD_NAMES) == set(METHODS)
    assert {name for name, method in METHODS.items() if method.data == "labels"} == {"KTO"}
    assert {name for name, method in METHODS.items() if method.reference} == {"DPO", "R-DPO", "IPO", "KTO"}
    plan = tiny_plan()
    parameters = plan.studies["methods"].block.parameters
    assert set(parameters) == set(METHOD_NAMES)  # the schema describes every method's parameters
    for name, method in METHODS.items():
        assert set(parameters[name]) == set(method.parameters)


def test_a_methods_inputs_come_from_its_training_sets_folder():
    plan = tiny_plan(lambda c: c.update(replicates=2))
    assert plan.studies["methods"].inputs("instruct", "DPO@DP") == {
        "examples": "results/methods/instruct/DP/pairs.parquet",
        "reference": "results/methods/instruct/DP/pairs_reference.parquet"}
    assert plan.studies["methods"].inputs("instruct", "SimPO@DP", 1) == {
        "examples": "results/replicate1/methods/instruct/DP/pairs.parquet"}
    kto = plan.studies["methods"].inputs("instruct", "KTO@BP")
    assert kto["reference"] == "results/methods/instruct/BP/labels_reference.parquet"
    assert plan.trained_model("instruct", "DPO@DP", 1) == "results/replicate1/models/instruct/DPO@DP"
    assert plan.studies["methods"].method_for("SimPO@DP") == {"method": "SimPO", "hyper": {"beta": 2.0, "gamma": 1.0}}


def test_method_rows_need_the_block_and_known_parameters(tmp_path):
    tables = tmp_path / "tables.yaml"
    tables.write_text("table2:\n  - {policy: Alpaca, setting: DPO@DP}\n")
    without = tiny_plan(lambda c: (c.pop("methods"), c.update(tables=str(tables), findings=None)))
    assert study_problems(without, "methods") == [
        f"{tables.name}: table2 row 1: DPO@DP needs the config's `methods` block (absent)"]
    assert study_problems(without, "methods")[0] in plan_problems(without) + without.study_problems()
    assert study_problems(tiny_plan(lambda c: c.update(tables=str(tables), findings=None)), "methods") == []


def test_an_unknown_kto_threshold_is_named():
    plan = tiny_plan(lambda c: c["methods"].update(kto_threshold="median"))
    assert study_problems(plan, "methods") == ["methods.kto_threshold: 'median' is neither prompt_mean nor a number"]
    assert study_problems(tiny_plan(lambda c: c["methods"].update(kto_threshold=0.5)), "methods") == []


def test_the_methods_are_points_of_the_over_optimisation_study():
    plan = tiny_plan()
    points = plan.studies["methods"].points()
    method_rows = [row.setting for row in plan.tables["table_methods"] if "@" in row.setting]
    assert list(points) == method_rows and len(points) == 14
    assert points["DPO@DP"] == "results/eval/instruct/DPO@DP/metrics.json"
    # added to the study's own, not in make run's
    assert not set(points) & set(plan.studies["overoptimisation"].block.points)
    assert tiny_plan(lambda c: c.pop("overoptimisation")).studies["methods"].points() == {}

