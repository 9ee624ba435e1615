"""Plans of the repository's configs without Snakemake, for the tests of the plan and of each study's plan."""

import copy

import yaml

from rrhf.config.schema import fill_defaults
from rrhf.plan.plan import Plan
from rrhf.studies.registry import STUDIES
from workflow_helpers import REPO

TINY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
NAMED = {"BP": {}, "DP": {}, "BP-norank": {}}


def tiny_plan(edit=None) -> Plan:
    config = copy.deepcopy(TINY)
    if edit:
        edit(config)
    return Plan(fill_defaults(config), REPO, STUDIES)


def study_problems(plan: Plan, key: str) -> list[str]:
    """One study's checks on a plan: its own when the config gives it, else what its absence leaves unmade."""
    study = plan.studies[key]
    return study.problems() if study else next(s for s in STUDIES if s.KEY == key).problems_without(plan)
