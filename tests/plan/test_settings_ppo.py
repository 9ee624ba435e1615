"""PPO-noKL: PPO with its KL penalty fixed at 0, from the setting's name to the ppo block and the train_ppo job."""

import copy
import re

import pytest

from plan_helpers import NAMED, TINY, tiny_plan
from rrhf.config.blocks import PPO
from rrhf.plan.replicates import replicate_seed
from rrhf.plan.settings import PPO_SETTINGS, RESERVED, parse_setting, setting_problem, trained_by_pattern
from workflow_helpers import dry_run_jobs, key_values, run_snakemake


def test_ppo_nokl_is_a_ppo_setting_without_kl():
    assert PPO_SETTINGS == ("PPO", "PPO-noKL") and set(PPO_SETTINGS) < set(RESERVED) and "none" in RESERVED
    ppo, no_kl = parse_setting("PPO", NAMED), parse_setting("PPO-noKL", NAMED)
    assert (ppo.kind, ppo.with_kl, ppo.number) == ("ppo", True, None)
    assert (no_kl.kind, no_kl.with_kl, no_kl.number) == ("ppo", False, None)
    for setting in (ppo, no_kl):
        assert setting.is_trained and not setting.trains_with_rrhf and setting.iteration is None
        assert setting_problem(setting.name, NAMED) is None
    # A reserved name wins over a `settings` entry of the same name.
    assert parse_setting("PPO-noKL", {"PPO-noKL": {}}).kind == "ppo"


@pytest.mark.parametrize("name", ["PPO-nokl", "PPO-NoKL", "PPO-noKL+KL", "ppo", "PPO-"])
def test_a_misspelt_ppo_setting_is_refused_and_the_message_lists_ppo_nokl(name):
    assert parse_setting(name, NAMED) is None
    problem = setting_problem(name, NAMED)
    assert problem.startswith(repr(name)) and "PPO, PPO-noKL," in problem


@pytest.mark.parametrize("name", RESERVED)
def test_no_settings_entry_may_take_a_reserved_name(name):
    """A `settings` entry named PPO-noKL would be shadowed by the PPO setting, and train_rrhf and train_ppo would
    both claim results/models/{policy}/PPO-noKL (Snakemake's AmbiguousRuleException): the schema refuses it."""
    import jsonschema

    from rrhf.config.schema import fill_defaults

    config = copy.deepcopy(TINY)
    config["settings"][name] = {"sampler": "beam", "provided": True}
    with pytest.raises(jsonschema.ValidationError, match=re.escape(repr(name))):
        fill_defaults(config)


def test_ppo_for_drops_the_kl_penalty_only_for_ppo_nokl():
    plan = tiny_plan()
    configured = plan.config["ppo"]  # config/config.yaml's, with the schema's defaults
    assert configured["kl"] == TINY["ppo"]["kl"] == {"controller": "adaptive", "init_coef": 0.05, "target": 6,
                                                     "horizon": 10000}
    assert plan.ppo_for(0, "PPO") == configured
    assert plan.ppo_for() == plan.ppo_for(0, "PPO")  # PPO is the default setting
    no_kl = plan.ppo_for(0, "PPO-noKL")
    assert no_kl["kl"] == {"controller": "fixed", "init_coef": 0.0, "target": 6, "horizon": 10000}
    assert {k: v for k, v in no_kl.items() if k != "kl"} == {k: v for k, v in configured.items() if k != "kl"}
    assert plan.config["ppo"]["kl"]["controller"] == "adaptive"  # the config itself is not edited
    assert PPO.from_config(no_kl).kl.controller == "fixed" and PPO.from_config(no_kl).kl.init_coef == 0.0
    from rrhf.training.ppo_parts import FixedKLController, kl_controller

    controller = kl_controller(PPO.from_config(no_kl).kl)
    assert isinstance(controller, FixedKLController) and controller.value == 0.0
    with pytest.raises(ValueError, match="setting 'PPO-nokl' is not one of"):
        plan.ppo_for(0, "PPO-nokl")


def test_ppo_for_a_replicate_reseeds_training_for_both_ppo_settings():
    plan = tiny_plan(lambda c: c.update(replicates=2))
    seed = TINY["ppo"]["training"]["seed"]
    for setting in PPO_SETTINGS:
        assert plan.ppo_for(1, setting)["training"]["seed"] == replicate_seed(seed, 1) != seed
        assert plan.ppo_for("replicate1/", setting) == plan.ppo_for(1, setting)
    assert plan.ppo_for(1, "PPO-noKL")["kl"]["init_coef"] == 0.0 and plan.ppo_for(1, "PPO")["kl"]["init_coef"] == 0.05
    kept = tiny_plan(lambda c: c.update(replicates=2, reseeded_stages=["models"]))
    assert kept.ppo_for(1, "PPO-noKL")["training"]["seed"] == seed  # training keeps its seeds


def test_training_about_a_ppo_setting_is_its_ppo_block():
    plan = tiny_plan()
    assert plan.training_about("PPO") == {"ppo": plan.config["ppo"]}
    assert plan.training_about("PPO-noKL") == {"ppo": plan.ppo_for(0, "PPO-noKL")}
    assert plan.training_about("PPO-noKL")["ppo"]["kl"]["init_coef"] == 0.0
    assert set(plan.training_about("DP")) == {"setting", "rank_weight", "rrhf"}
    assert plan.evaluated_model("instruct", "PPO-noKL") == plan.trained_model("instruct", "PPO-noKL") == \
        "results/models/instruct/PPO-noKL"


def test_the_ppo_wildcard_pattern_matches_exactly_the_ppo_settings():
    """train_ppo's ``setting`` constraint (from rrhf.plan.settings.TRAINERS): no RRHF, online or misspelt setting
    reaches PPO training."""
    pattern = re.compile(trained_by_pattern("train_ppo", ["DP", "BP"]))
    assert pattern.fullmatch("PPO") and pattern.fullmatch("PPO-noKL")
    for other in ("PPO-nokl", "PPO-", "PPO-noKL+KL", "DP", "OP-2", "none", "best-of-4"):
        assert not pattern.fullmatch(other), other


def test_dry_run_of_a_ppo_nokl_evaluation_plans_its_own_ppo_training(tmp_path):
    dry_run = run_snakemake(tmp_path, "-n", "results/eval/instruct/PPO-noKL/metrics.json", timeout=300).stdout
    jobs = dry_run_jobs(dry_run)
    ppo = [job for job in jobs if job["rule"] == "train_ppo"]
    assert len(ppo) == 1, dry_run[-3000:]
    assert ppo[0]["output"] == "results/models/instruct/PPO-noKL"
    assert key_values(ppo[0]["wildcards"]) == {"replicate": "", "policy": "instruct", "setting": "PPO-noKL"}
    assert ppo[0]["log"] == "logs/train_ppo/instruct_PPO-noKL.log"
    evaluation = [job for job in jobs if "results/eval/instruct/PPO-noKL/metrics.json" in job.get("output", "")]
    assert len(evaluation) == 1 and "results/models/instruct/PPO-noKL" in evaluation[0]["input"].split(", ")
    outputs = {path for job in jobs for path in job.get("output", "").split(", ")}
    assert "results/models/instruct/PPO" not in outputs  # PPO itself is not trained for it
