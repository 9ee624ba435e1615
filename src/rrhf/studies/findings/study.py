"""The findings in the plan (config key ``findings``: a file of claims, config/findings.yaml): each claim read and
checked against the tables before any job, and what the findings rule reads of every replicate."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from rrhf.plan.checks import table_problems
from rrhf.plan.study import Study
from rrhf.studies.findings.claims import Claim, claims_for_rule, read_claims


class FindingsStudy(Study):
    """The paper's claims, judged over replicates; ``block`` is the path of the claims file."""

    KEY = "findings"
    block: Path

    @classmethod
    def of(cls, plan) -> "FindingsStudy | None":
        value = plan.config.get(cls.KEY)
        return None if value is None else cls(plan, plan.workflow_dir / value)

    @functools.cached_property
    def read(self) -> tuple[list[Claim], list[str]]:
        """(claims, problems) of the claims file, read once; none while the tables themselves have problems (a
        claim names rows of the tables)."""
        if table_problems(self.plan):
            return [], []
        return read_claims(self.plan, self.block)

    @property
    def claims(self) -> list[Claim]:
        return self.read[0]

    def problems(self) -> list[str]:
        """Claims that cannot be measured: rows no table has, metrics their tables lack."""
        return [f"findings: {problem}" for problem in self.read[1]]

    @functools.cached_property
    def rule_claims(self) -> list[dict[str, Any]]:
        """The claims as the findings rule passes them (rrhf.studies.findings.claims.claims_for_rule), made once."""
        return claims_for_rule(self.plan, self.claims)

    def files(self) -> list[str]:
        """Every file the claims read, in every replicate."""
        return sorted({path for claim in self.rule_claims for pair in claim["files"] for path in pair})


def claim_files(study: FindingsStudy | None) -> list[str]:
    """Every file the claims of a run read (the findings rule's input); none to read is an error, naming the key."""
    if study is None:
        raise ValueError("findings: null in the config, so there are no claims to measure; set it to "
                         "config/findings.yaml or another file of claims")
    return study.files()
