"""The over-optimisation study in the plan (config key ``overoptimisation``): for one initial policy, its proxy and
gold reward against sqrt(KL(pi || rho)) for best-of-n, along the training of PPO or online RRHF, and at evaluated
settings (:mod:`rrhf.studies.overoptimisation.curves` draws them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from rrhf.config.typed_config import Block
from rrhf.plan import paths
from rrhf.plan.settings import parse_setting
from rrhf.plan.study import Study

# What a curve followed along training reads from its trained model's folder, by setting kind.
CURVE_FILES = {"ppo": "train_log.parquet", "online": "online_samples.parquet"}


@dataclass(frozen=True)
class Overoptimisation(Block):
    """``overoptimisation``: the over-optimisation study of one initial policy."""

    SCHEMA: ClassVar[str] = "overoptimisation"
    policy: str
    best_of: list[int]
    along_training: list[str]
    points: list[str]


class OveroptimisationStudy(Study):
    """The study's files in each replicate and its checks; ``block`` is its :class:`Overoptimisation`."""

    KEY = "overoptimisation"
    BLOCK = Overoptimisation
    block: Overoptimisation

    def inputs(self, replicate: int | str = 0) -> dict[str, Any]:
        """The study's files: ``samples`` (the best-of-max(n) evaluation's samples), ``curves`` (setting -> its
        PPO train_log or online RRHF online_samples) and ``points`` (setting -> its evaluation metrics)."""
        plan, study = self.plan, self.block
        model = plan.policies[study.policy]
        return {"samples": plan.evaluation_file(model, f"best-of-{max(study.best_of)}", "samples.parquet",
                                                replicate),
                "curves": {setting: f"{plan.trained_model(model, setting, replicate)}/"
                                    f"{CURVE_FILES[plan.setting(setting).kind]}" for setting in study.along_training},
                "points": {setting: plan.evaluation_file(model, setting, "metrics.json", replicate)
                           for setting in study.points}}

    def rule_inputs(self, replicate: int | str = 0) -> dict[str, Any]:
        """:meth:`inputs` as a rule's input: a trained model is a directory output, so its folder is the input
        (the log file in it is a param)."""
        files = self.inputs(replicate)
        return {"samples": files["samples"], "trained_models": [str(Path(p).parent) for p in files["curves"].values()],
                "points": list(files["points"].values())}

    def problems(self) -> list[str]:
        """Its names: a policy role of `policies`, settings followed along training that log it (PPO, PPO-noKL,
        OP-k[+KL]), and evaluated settings as points (not best-of-n: no KL is measured)."""
        plan, study, problems = self.plan, self.block, []
        if study.policy not in plan.policies:
            problems.append(f"overoptimisation.policy: {study.policy!r} is not a role of `policies` "
                            f"({', '.join(sorted(plan.policies))})")
        for key, names, kinds, what in (
                ("along_training", study.along_training, ("ppo", "online"), "PPO, PPO-noKL, OP-k or OP-k+KL"),
                ("points", study.points, ("none", "ppo", "named", "iterated", "online"), "an evaluated setting")):
            for k, name in enumerate(names):
                parsed = parse_setting(name, plan.settings)
                if parsed is None or parsed.kind not in kinds:
                    problems.append(f"overoptimisation.{key}[{k}]: {name!r} is not {what}")
        return problems

    def settings_used(self) -> set[str]:
        study = self.block
        return set(study.points) | set(study.along_training) | {f"best-of-{n}" for n in study.best_of}

    def targets(self, note: Callable[[str], None]) -> list[str]:
        """Proxy and gold reward against sqrt(KL), in replicate 0."""
        return [paths.OVEROPTIMISATION(replicate=""), paths.OVEROPTIMISATION_FIGURE(replicate="")]
