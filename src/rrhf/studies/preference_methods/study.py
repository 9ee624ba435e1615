"""RRHF's successors in the plan (config key ``methods``; setting ``{method}@{setting}``): the typed block, the
files a method's training reads in each replicate, and the checks.

``DPO@DP`` trains the policy with DPO on pairs made from DP's training set (``methods.pairs``), with rho's
log-probabilities of every reply computed once beforehand; the model is results/models/{policy}/DPO@DP, evaluated
like any other row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from rrhf.config.typed_config import Block
from rrhf.plan.settings import METHOD_NAMES, METHODS, parse_setting

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

@dataclass(frozen=True)
class Methods(Block):
    """``methods``: how a scored set becomes pairs or labels, and each method's hyper-parameters."""

    SCHEMA: ClassVar[str] = "methods"
    pairs: str
    kto_threshold: Any
    parameters: dict[str, dict[str, float]]


def method_file(plan: "Plan", policy: str, setting: str, name: str, replicate: int | str = 0) -> str:
    """A file made for the methods from a named setting's training set: results/[replicate{r}/]methods/{policy}/
    {setting}/{name}, in the replicate folder of that training set."""
    stage = plan.training_set_stage(setting)
    return f"results/{plan.folder(replicate, stage)}methods/{policy}/{setting}/{name}"


def method_inputs(plan: "Plan", policy: str, name: str, replicate: int | str = 0) -> dict[str, str]:
    """What the training of ``name`` ({method}@{setting}) reads: its ``examples`` and, for a method with a
    reference, rho's log-probabilities of them (``reference``)."""
    setting = plan.setting(name)
    data = METHODS[setting.method].data
    inputs = {"examples": method_file(plan, policy, setting.training_set, f"{data}.parquet", replicate)}
    if METHODS[setting.method].reference:
        inputs["reference"] = method_file(plan, policy, setting.training_set, f"{data}_reference.parquet", replicate)
    return inputs


def method_for(plan: "Plan", name: str) -> dict[str, Any]:
    """The method and hyper-parameters a {method}@{setting} job trains with."""
    method = plan.setting(name).method
    return {"method": method, "hyper": dict(plan.methods.parameters[method])}


def method_problems(plan: "Plan") -> list[str]:
    """Method rows without the ``methods`` block, a method without parameters, a training set that is sampled
    during training (online) or has none."""
    problems = []
    for rows in plan.tables.values():
        for row in rows:
            for side in (row, row.versus) if row.versus is not None else (row,):
                setting = parse_setting(side.setting, plan.settings) if side.setting else None
                if setting is None or setting.kind != "method":
                    continue
                where = f"{plan.tables_file.name}: {row.where}"
                if plan.methods is None:
                    problems.append(f"{where}: {side.setting} needs the config's `methods` block (absent)")
                elif setting.method not in plan.methods.parameters:
                    problems.append(f"{where}: {side.setting}: methods.parameters has no {setting.method}")
    if plan.methods is not None:
        if isinstance(plan.methods.kto_threshold, str) and plan.methods.kto_threshold != "prompt_mean":
            problems.append(f"methods.kto_threshold: {plan.methods.kto_threshold!r} is neither prompt_mean nor a "
                            "number")
        unknown = sorted(set(plan.methods.parameters) - set(METHOD_NAMES))
        if unknown:
            problems.append(f"methods.parameters: {unknown} are not methods ({', '.join(METHOD_NAMES)})")
    return problems


def training_benchmarks(plan: "Plan", policy: str, name: str, replicate: int | str = 0) -> list[str]:
    """The benchmark files (Snakemake's time and memory of a job) of what training a row's model took: RRHF's or
    PPO's training job, or a method's training job and its reference stage; none for a row that trains nothing
    (the untrained policy, best-of-n). IP-1 is resampling.setting's job."""
    setting = plan.setting(name)
    folder = plan.folder(replicate, "training")
    trained = plan.trained_setting(name)
    if setting.kind == "method":
        files = [f"logs/benchmarks/train_preference_method/{folder}{policy}_{name}.tsv"]
        if METHODS[setting.method].reference:
            stage_folder = plan.folder(replicate, plan.training_set_stage(setting.training_set))
            files.append(f"logs/benchmarks/methods/{stage_folder}{policy}_{setting.training_set}_"
                         f"{METHODS[setting.method].data}_reference.tsv")
        return files
    rule = {"named": "train_rrhf", "iterated": "train_rrhf", "online": "train_online_rrhf", "ppo": "train_ppo"}
    return [f"logs/benchmarks/{rule[setting.kind]}/{folder}{policy}_{trained}.tsv"] if setting.kind in rule else []


def method_points(plan: "Plan") -> dict[str, str]:
    """{setting: its evaluation's metrics.json} of the methods table's method rows for the over-optimisation
    study's policy: the points results/overoptimisation_methods.csv adds to the study's (replicate 0)."""
    study = plan.overoptimisation
    if study is None:
        return {}
    return {row.setting: plan.evaluation_file(plan.policies[row.policy], row.setting, "metrics.json")
            for row in plan.tables.get("table_methods", [])
            if row.policy == study.policy and plan.setting(row.setting).kind == "method"}
