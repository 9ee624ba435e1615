"""Fine-grained RLHF in the plan (config key ``fine_grained``; docs/fine_grained.md): its files in each replicate,
what its jobs train with, its checks, its GPU memory and what `all` builds of it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from rrhf.plan import paths
from rrhf.plan.checks import single_process_problems
from rrhf.plan.memory import RuleMemory, add, forward_pass, generation, inference_bytes, weights
from rrhf.plan.memory_plan import inference_memory, ppo_rule_memory, trainer_memory
from rrhf.plan.model_facts import facts_of, model_facts
from rrhf.plan.study import Study
from rrhf.plan.table_rows import rows_of_kind
from rrhf.studies.fine_grained.config import FineGrained

SEGMENT_MODEL_KINDS = ("relevance", "factuality", "completeness")
FEEDBACK_CHUNK = 128  # rrhf.studies.fine_grained.feedback_collection.SAMPLING_CHUNK: replies per generate call


class FineGrainedStudy(Study):
    """Fine-grained RLHF of one initial policy; ``block`` is its :class:`FineGrained`."""

    KEY = "fine_grained"
    BLOCK = FineGrained
    block: FineGrained

    # --- files ----------------------------------------------------------------------------------------------------

    def file(self, name: str, replicate: int | str = 0) -> str:
        """A file of the study: ``feedback.json`` and ``completeness.json`` (sampling stage)."""
        return paths.FINE_GRAINED(replicate=self.plan.folder(replicate, "sampling"), name=name)

    def reward_models(self, replicate: int | str = 0) -> dict[str, str]:
        """kind -> folder of each fine-grained reward model in a replicate (training stage)."""
        folder = self.plan.folder(replicate, "training")
        return {kind: paths.SEGMENT_REWARD_MODEL(replicate=folder, kind=kind) for kind in SEGMENT_MODEL_KINDS}

    def evaluation(self, model: str, setting: str, name: str, replicate: int | str = 0) -> str:
        """A row's fine-grained evaluation file (``metrics.json`` or ``segments.parquet``): beside the reward
        models it is judged by, so in the training stage's folder."""
        return paths.FINE_GRAINED_EVALUATION(replicate=self.plan.folder(replicate, "training"), policy=model,
                                             setting=setting, name=name)

    def policy(self) -> str:
        """The models entry of the policy whose replies are annotated and trained."""
        return self.plan.policies[self.block.policy]

    def given_feedback(self) -> list[str]:
        """People's annotation files, where the config gives them (fine_grained.feedback.file and
        completeness_file)."""
        feedback = self.block.feedback
        return [f for f in (feedback.file, feedback.completeness_file) if f]

    # --- what its jobs take -----------------------------------------------------------------------------------------

    def init(self, replicate: int | str = 0) -> tuple[str, list[str]]:
        """(path, input files) of the model the reward models start from: a `models` entry, or a path or hub id
        as given."""
        init = self.block.reward_models.init
        if init in self.plan.models:
            return self.plan.model_path(init, replicate), self.plan.model_input(init, replicate)
        return init, [init] if Path(init).exists() else []

    def reward_model_build(self, kind: str, replicate: int | str = 0) -> dict[str, Any]:
        """``fine_grained.reward_models`` for one kind's model in a replicate: its training seed is the config's
        plus 0, 1 or 2 (relevance, factuality, completeness), re-seeded with the training stage."""
        block = self.plan.config["fine_grained"]["reward_models"]
        seed = self.plan.replicates.seed(block["training"]["seed"] + SEGMENT_MODEL_KINDS.index(kind), replicate,
                                         "training")
        return {**block, "training": {**block["training"], "seed": seed}}

    def feedback(self, replicate: int | str = 0) -> dict[str, Any]:
        """``fine_grained.feedback`` with the replicate's sampling seed."""
        feedback = self.plan.config["fine_grained"]["feedback"]
        return {**feedback, "seed": self.plan.replicates.seed(feedback["seed"], replicate, "sampling")}

    def ppo_for(self, setting: str, replicate: int | str = 0) -> dict[str, Any]:
        """The ``ppo`` block FG-PPO[-{variant}] trains with: PPO's, with fine_grained.kl_coef (fixed) where set."""
        ppo = self.plan.ppo_for(replicate, "PPO")
        if self.block.kl_coef is None:
            return ppo
        return {**ppo, "kl": {**ppo["kl"], "controller": "fixed", "init_coef": self.block.kl_coef}}

    def weights_for(self, setting: str) -> dict[str, Any]:
        """What FG-PPO[-{variant}] trains with besides ``ppo_for``: the segment weights and the reward scaling."""
        variant = self.plan.setting(setting).variant
        return {"weights": self.block.weights_of(variant).as_config(), "reward_scaling": self.block.reward_scaling}

    def training(self, setting: str, replicate: int | str = 0) -> dict[str, Any]:
        """The ``fine_grained`` argument of rrhf.training.ppo.train_ppo: weights, scaling, the reward models."""
        models = self.block.reward_models
        return {**self.weights_for(setting), "models": self.reward_models(replicate),
                "marker_position": models.marker_position, "max_length": models.max_length}

    def training_about(self, setting: str) -> dict[str, Any]:
        """The config behind an FG-PPO model, for its report caption."""
        return {"ppo": self.ppo_for(setting), "fine_grained": self.weights_for(setting)}

    # --- checks, memory, targets --------------------------------------------------------------------------------------

    @classmethod
    def problems_without(cls, plan) -> list[str]:
        return [f"{where}: {row.setting} needs the config's `fine_grained` block (absent)"
                for where, row, _ in rows_of_kind(plan, "fine_grained")]

    def problems(self) -> list[str]:
        """Its names: its policy a role of `policies`, its reward models' start a `models` entry or a path, and
        every FG-PPO row of the tables backed by the block (its variant one of `variants`)."""
        plan, study, problems = self.plan, self.block, []
        for where, row, setting in rows_of_kind(plan, "fine_grained"):
            if setting.variant is not None and setting.variant not in study.variants:
                problems.append(f"{where}: {row.setting}: {setting.variant!r} is not one of fine_grained.variants "
                                f"({', '.join(sorted(study.variants)) or 'none given'})")
            elif row.policy != study.policy:
                problems.append(f"{where}: {row.setting} trains fine_grained.policy ({study.policy}), not "
                                f"{row.policy}")
        if study.policy not in plan.policies:
            problems.append(f"fine_grained.policy: {study.policy!r} is not a role of `policies` "
                            f"({', '.join(sorted(plan.policies))})")
        dataset = plan.config["datasets"].get(plan.config["data"]["dataset"], {})
        if study.feedback.file is None and dataset.get("source") != "synthetic":
            problems.append(f"fine_grained.feedback.file: the dataset {plan.config['data']['dataset']!r} has no "
                            "gold reward, so no simulated annotators can label the replies; give a qa-feedback file "
                            "of people's annotations (results/fine_grained/annotation.html saves one)")
        if study.feedback.completeness_file is not None and study.feedback.file is None:
            problems.append("fine_grained.feedback.completeness_file: given without fine_grained.feedback.file")
        init = study.reward_models.init
        if init not in plan.models and not Path(init).exists() and init.startswith((".", "/", "~")):
            problems.append(f"fine_grained.reward_models.init: {init!r} is neither a `models` entry nor an "
                            "existing path")
        return problems + single_process_problems(plan, {"train_fine_grained_ppo": "Fine-grained PPO"})

    def memory(self) -> list[RuleMemory]:
        """Its reward models' training, the feedback's sampling, the evaluation's three classifiers and, with an
        FG-PPO row, PPO holding the three segment reward models besides."""
        plan, models = self.plan, self.block.reward_models
        segment = facts_of(plan, models.init, "token_classification")
        training, ib = models.training, inference_bytes(plan)
        tokens = training.batch_size * training.max_length
        rules = [trainer_memory(plan, "train_segment_reward_model", segment, training, tokens, 0,
                                f"{models.init}: {training.batch_size} x {training.max_length} tokens")]
        policy = model_facts(plan, self.policy())
        feedback = self.block.feedback.generation
        sampled = add({"weights": weights(policy, ib)},
                      generation(policy, FEEDBACK_CHUNK, feedback.max_new_tokens, ib, plan.ppo.training.max_length))
        judged = {"weights": 3 * weights(segment, ib),
                  "activations": forward_pass(segment, plan.scoring.batch_size, models.max_length, ib)}
        rules += [inference_memory(plan, "collect_fine_grained_feedback", self.block.policy, [sampled]),
                  inference_memory(plan, "evaluate_fine_grained", models.init, [judged])]
        if rows_of_kind(plan, "fine_grained"):
            rules.append(ppo_rule_memory(plan, "train_fine_grained_ppo", 3 * weights(segment, ib)))
        return rules

    def targets(self, note: Callable[[str], None]) -> list[str]:
        """Its table, every reward model's held-out metrics and the annotation page; with people's feedback not
        there yet, none (asking for the table itself then names the missing file)."""
        missing = [f for f in self.given_feedback() if not os.path.exists(f)]
        if missing:
            note(f"fine_grained: {', '.join(missing)} not there yet (people's feedback, fine_grained.feedback.file): "
                 "`all` leaves out results/table_fine_grained.csv")
            return []
        if not self.plan.tables.get("table_fine_grained"):
            return []
        return [paths.TABLE(table="table_fine_grained"), str(paths.FINE_GRAINED_REWARD_MODELS),
                str(paths.ANNOTATION_PAGE)]
