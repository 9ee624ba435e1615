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
from rrhf.plan import paths
from rrhf.plan.memory import RuleMemory, logits, weights
from rrhf.plan.memory_plan import inference_memory, largest_policy, trainer_memory
from rrhf.plan.settings import METHOD_NAMES, METHODS, TRAINERS
from rrhf.plan.study import Study
from rrhf.plan.table_rows import rows_of_kind

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

@dataclass(frozen=True)
class Methods(Block):
    """``methods``: how a scored set becomes pairs or labels, and each method's hyper-parameters."""

    SCHEMA: ClassVar[str] = "methods"
    pairs: str
    kto_threshold: Any
    parameters: dict[str, dict[str, float]]


class PreferenceMethodsStudy(Study):
    """RRHF's successors trained on the tables' training sets; ``block`` is its :class:`Methods`."""

    KEY = "methods"
    BLOCK = Methods
    block: Methods

    def examples_file(self, policy: str, setting: str, name: str, replicate: int | str = 0) -> str:
        """A file made for the methods from a named setting's training set: results/[replicate{r}/]methods/
        {policy}/{setting}/{name}, in the replicate folder of that training set."""
        stage = self.plan.training_set_stage(setting)
        return paths.METHOD_EXAMPLES(replicate=self.plan.folder(replicate, stage), policy=policy, setting=setting,
                                     name=name)

    def inputs(self, policy: str, name: str, replicate: int | str = 0) -> dict[str, str]:
        """What the training of ``name`` ({method}@{setting}) reads: its ``examples`` and, for a method with a
        reference, rho's log-probabilities of them (``reference``)."""
        setting = self.plan.setting(name)
        data = METHODS[setting.method].data
        inputs = {"examples": self.examples_file(policy, setting.training_set, f"{data}.parquet", replicate)}
        if METHODS[setting.method].reference:
            inputs["reference"] = self.examples_file(policy, setting.training_set, f"{data}_reference.parquet",
                                                     replicate)
        return inputs

    def method_for(self, name: str) -> dict[str, Any]:
        """The method and hyper-parameters a {method}@{setting} job trains with."""
        method = self.plan.setting(name).method
        return {"method": method, "hyper": dict(self.block.parameters[method])}

    def points(self) -> dict[str, str]:
        """{setting: its evaluation's metrics.json} of the methods table's method rows for the over-optimisation
        study's policy: the points results/overoptimisation_methods.csv adds to the study's (replicate 0)."""
        plan, study = self.plan, self.plan.studies.get("overoptimisation")
        if study is None:
            return {}
        return {row.setting: plan.evaluation_file(plan.policies[row.policy], row.setting, "metrics.json")
                for row in plan.tables.get("table_methods", [])
                if row.policy == study.block.policy and plan.setting(row.setting).kind == "method"}

    @classmethod
    def problems_without(cls, plan: "Plan") -> list[str]:
        return [f"{where}: {side.setting} needs the config's `methods` block (absent)"
                for where, side, _ in rows_of_kind(plan, "method", versus=True)]

    def problems(self) -> list[str]:
        """A method without parameters, a kto_threshold that is neither prompt_mean nor a number, parameters of
        no method."""
        methods = self.block
        problems = [f"{where}: {side.setting}: methods.parameters has no {setting.method}"
                    for where, side, setting in rows_of_kind(self.plan, "method", versus=True)
                    if setting.method not in methods.parameters]
        if isinstance(methods.kto_threshold, str) and methods.kto_threshold != "prompt_mean":
            problems.append(f"methods.kto_threshold: {methods.kto_threshold!r} is neither prompt_mean nor a number")
        unknown = sorted(set(methods.parameters) - set(METHOD_NAMES))
        if unknown:
            problems.append(f"methods.parameters: {unknown} are not methods ({', '.join(METHOD_NAMES)})")
        return problems

    def memory(self) -> list[RuleMemory]:
        """A method's training (a batch of pairs, each reply up to rrhf.training.max_length) and the reference's
        log-probabilities in float32."""
        plan = self.plan
        name, policy = largest_policy(plan)
        training = plan.rrhf.training
        pair_tokens = training.batch_size * 2 * training.max_length
        reference = {"weights": weights(policy, 4), "activations": logits(policy, pair_tokens, 4)}
        return [trainer_memory(plan, "train_preference_method", policy, training, pair_tokens, pair_tokens,
                               f"{name}: {training.batch_size} pairs x {training.max_length} tokens", training.lora),
                inference_memory(plan, "reference_logprobs", f"{name} in float32", [reference])]


def training_benchmarks(plan: "Plan", policy: str, name: str, replicate: int | str = 0) -> list[str]:
    """The benchmark files (Snakemake's time and memory of a job) of what training a row's model took: its
    trainer's job (rrhf.plan.settings.TRAINERS), and a method's reference stage; none for a row that trains
    nothing (the untrained policy, best-of-n). IP-1 is resampling.setting's job."""
    setting = plan.setting(name)
    if setting.kind not in TRAINERS:
        return []
    folder = plan.folder(replicate, "training")
    files = [paths.benchmark_file(TRAINERS[setting.kind], paths.TRAINED_MODEL, replicate=folder, policy=policy,
                                  setting=plan.trained_setting(name))]
    if setting.kind == "method" and METHODS[setting.method].reference:
        data = METHODS[setting.method].data
        files.append(paths.benchmark_file(
            "reference_logprobs", REFERENCE_LOGPROBS, replicate=plan.folder(replicate, plan.training_set_stage(
                setting.training_set)), policy=policy, setting=setting.training_set, data=data))
    return files


# The rules' outputs: a training set's pairs or labels, and rho's log-probabilities of them.
EXAMPLES = paths.METHOD_EXAMPLES(name="{data}.parquet")
REFERENCE_LOGPROBS = paths.METHOD_EXAMPLES(name="{data}_reference.parquet")
