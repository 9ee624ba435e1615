"""rrhf.plan.paths: every path of a run from one template, filled in by the plan and left with wildcards for the
rules; logs named from an output's wildcards; and no path of a run formatted anywhere else in the library."""

import re
import tokenize

import pytest

from plan_helpers import tiny_plan
from rrhf.plan import paths
from workflow_helpers import REPO


def test_a_template_fills_what_it_is_given_and_leaves_the_rest_to_snakemake():
    assert paths.TRAINED_MODEL() == "results/{replicate}models/{policy}/{setting}"
    assert paths.EVALUATION(name="metrics.json") == "results/{replicate}eval/{policy}/{setting}/metrics.json"
    assert paths.TRAINED_MODEL(replicate="replicate2/", policy="instruct", setting="DP") == \
        "results/replicate2/models/instruct/DP"
    with pytest.raises(KeyError, match="no wildcard"):
        paths.TRAINED_MODEL(polcy="instruct")  # a misspelt wildcard is an error, not a path with a hole


def test_a_path_is_read_back_into_its_wildcards():
    assert paths.TRAINED_MODEL.parse("results/models/instruct/OP-2+KL") == \
        {"replicate": "", "policy": "instruct", "setting": "OP-2+KL"}
    assert paths.EVALUATION.parse("results/replicate3/eval/base/DP/metrics.json")["replicate"] == "replicate3/"
    assert paths.TRAINED_MODEL.parse("results/models/instruct/DP/extra") is None
    assert paths.TRAINED_MODEL.parse("results/replicate0/models/instruct/DP") is None  # replicate 0 has no folder


def test_logs_and_benchmarks_are_named_by_their_outputs_wildcards():
    assert paths.log_file("train_rrhf", paths.TRAINED_MODEL) == "logs/train_rrhf/{replicate}{policy}_{setting}.log"
    assert paths.benchmark_file("train_rrhf", paths.TRAINED_MODEL, replicate="", policy="instruct",
                                setting="DP") == "logs/benchmarks/train_rrhf/instruct_DP.tsv"
    assert paths.log_file("score_provided", paths.PROVIDED_REWARDS, "provided") == \
        "logs/score_provided/{replicate}provided.log"
    assert paths.log_file("tables", name="table6") == "logs/tables/table6.log"
    with pytest.raises(ValueError, match="needs a name"):
        paths.log_file("tables", paths.TABLE(table="table6"))


def test_the_plan_fills_the_templates_the_rules_make():
    plan = tiny_plan()
    for path, template in ((plan.trained_model("instruct", "DP", 1), paths.TRAINED_MODEL),
                           (plan.scored_file("instruct", "DP"), paths.TRAINING_SET),
                           (plan.evaluation_file("instruct", "PPO", "metrics.json", 2), paths.EVALUATION),
                           (plan.model_path("reward", 1), paths.MODEL),
                           (plan.setting_parts("instruct", "IP-2")["sampled"], paths.ITERATED_REWARDS)):
        assert template.parse(path) is not None, (path, template)


def test_no_library_module_but_the_paths_module_formats_a_run_path():
    # A results/ or resources/ path written as a string outside rrhf.plan.paths would be a second copy of the
    # layout (the test can fail: plan.py wrote eleven of them before).
    written = []
    for path in (REPO / "src" / "rrhf").rglob("*.py"):
        if path.name == "paths.py":
            continue
        with open(path, encoding="utf-8") as source:
            for token in tokenize.generate_tokens(source.readline):
                literal = token.string.lstrip("rbfRBF")
                if token.type == tokenize.STRING and not literal.startswith(('"""', "'''")) \
                        and re.match(r"""["'](?:results|resources)/""", literal):
                    written.append(f"{path.relative_to(REPO)}:{token.start[0]}: {token.string}")
    assert written == []
