"""The plan of a run: from the validated config, what each setting means, where each file goes, what a job takes.

``Plan.from_config(config, workflow_dir, STUDIES)`` is built once, by workflow/rules/common.smk, before any job,
with one object per study the config gives (``plan.studies``); it raises ValueError listing every problem it and
the studies find (:mod:`rrhf.plan.checks`), each naming its config key. Every file it names is filled in from
:mod:`rrhf.plan.paths`, the templates the rules' outputs are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rrhf.config.blocks import (
    PPO,
    RRHF,
    Checkpoints,
    Data,
    Evaluation,
    Precision,
    Resampling,
    Resources,
    Sampling,
    Scoring,
)
from rrhf.config.schema import fill_defaults
from rrhf.models.sources import needs_import
from rrhf.plan import paths
from rrhf.plan.checks import plan_problems
from rrhf.plan.replicates import Replicates
from rrhf.plan.settings import Setting, parse_setting, setting_problem
from rrhf.plan.study import Study
from rrhf.plan.table_rows import TableRow, read_table_rows

SAMPLERS = ("beam", "diverse_beam", "top_p")


class Plan:
    """The config of one run, checked, with the typed blocks, the studies and the answers the rules need."""

    def __init__(self, config: dict[str, Any], workflow_dir: str | os.PathLike,
                 studies: tuple[type[Study], ...] = ()):
        self.config = config
        self.workflow_dir = Path(workflow_dir)
        self.models: dict[str, dict[str, Any]] = config["models"]
        self.policies: dict[str, str] = config["policies"]  # table role -> models entry
        self.settings: dict[str, dict[str, Any]] = config["settings"]
        self.reward_model: str = config["reward_model"]
        self.evaluation_model: str = config["evaluation_model"]
        self.shards: int = config["shards"]
        self.replicates = Replicates(config["replicates"], config["reseeded_stages"])
        self.data = Data.from_config(config["data"])
        self.rrhf = RRHF.from_config(config["rrhf"])
        self.ppo = PPO.from_config(config["ppo"])
        self.sampling = Sampling.from_config(config["sampling"])
        self.scoring = Scoring.from_config(config["scoring"])
        self.evaluation = Evaluation.from_config(config["evaluation"])
        self.resampling = Resampling.from_config(config["resampling"])
        self.checkpoints = Checkpoints.from_config(config["checkpoints"])
        self.precision = Precision.from_config(config["precision"])
        self.resources = Resources.from_config(config["resources"])
        self.tables_file = self.workflow_dir / config["tables"]
        self.tables: dict[str, list[TableRow]]
        self.tables, self.table_problems = read_table_rows(self.tables_file, config["table_settings"])
        accelerate = config["accelerate_config"]
        self.accelerate_config = str(self.workflow_dir / accelerate) if accelerate else None
        # The studies beyond the paper's pipeline (rrhf.studies), by config key: None when the config leaves it out.
        self.study_classes = tuple(studies)
        self.studies: dict[str, Study | None] = {}
        for study in self.study_classes:
            self.studies[study.KEY] = study.of(self)

    @classmethod
    def from_config(cls, config: dict[str, Any], workflow_dir: str | os.PathLike,
                    studies: tuple[type[Study], ...] = ()) -> "Plan":
        """Validate ``config`` (filling in the schema's defaults, in place), build the plan with its ``studies``
        (rrhf.studies.registry.STUDIES for a whole run) and check it and them; raises ValueError listing every
        problem."""
        plan = cls(fill_defaults(config), workflow_dir, studies)
        problems = plan_problems(plan) + plan.study_problems()
        if problems:
            raise ValueError("config error(s):\n  " + "\n  ".join(problems))
        return plan

    def study_problems(self) -> list[str]:
        """Every study's checks: its own when the config gives it, else what its absence leaves unmade."""
        return [problem for study in self.study_classes for problem in (
            self.studies[study.KEY].problems() if self.studies[study.KEY] else study.problems_without(self))]

    def active_studies(self) -> list[Study]:
        """The studies the config gives."""
        return [study for study in self.studies.values() if study is not None]

    # --- settings -----------------------------------------------------------------------------------------------

    def setting(self, name: str) -> Setting:
        """The parsed setting ``name``; raises ValueError saying why when it is none."""
        parsed = parse_setting(name, self.settings)
        if parsed is None:
            raise ValueError(f"setting {setting_problem(name, self.settings)}")
        return parsed

    def trained_setting(self, name: str) -> str:
        """The setting whose model and training set a setting's are: IP-1 is resampling.setting's, others their own."""
        return self.resampling.setting if self.setting(name).iteration == 1 else name

    def setting_spec(self, name: str) -> dict[str, Any]:
        """The ``settings`` entry a setting follows (its sampler, provided responses, rank weight): IP-{n} and
        OP-{k}[+KL] follow resampling.setting."""
        if self.setting(name).follows_resampling:
            return self.settings[self.resampling.setting]
        return self.settings[name]

    def rank_weight(self, name: str) -> float:
        return self.setting_spec(name).get("rank_weight", self.rrhf.rank_weight)

    def rrhf_for(self, name: str, replicate: int | str = 0) -> dict[str, Any]:
        """The ``rrhf`` block a setting trains with in a replicate: the config's, with the setting's own
        rank_weight and the replicate's training seed."""
        return {**self.with_seed(self.config["rrhf"], "training", replicate), "rank_weight": self.rank_weight(name)}

    def ppo_for(self, replicate: int | str = 0, setting: str = "PPO") -> dict[str, Any]:
        """The ``ppo`` block with the replicate's training seed; for PPO-noKL with a fixed KL coefficient of 0 (the
        fine-grained study sets its own: rrhf.studies.fine_grained.study.FineGrainedStudy.ppo_for)."""
        ppo = self.with_seed(self.config["ppo"], "training", replicate)
        if self.setting(setting).with_kl:
            return ppo
        return {**ppo, "kl": {**ppo["kl"], "controller": "fixed", "init_coef": 0.0}}

    def best_of_n_for(self, replicate: int | str = 0) -> dict[str, Any]:
        """``evaluation.best_of_n`` with the replicate's sampling seed."""
        best_of_n = self.config["evaluation"]["best_of_n"]
        return {**best_of_n, "seed": self.replicates.seed(best_of_n["seed"], replicate, "sampling")}

    def with_seed(self, block: dict[str, Any], stage: str, replicate: int | str) -> dict[str, Any]:
        """A block whose ``training.seed`` is the replicate's seed of ``stage`` (the block itself in replicate
        0, or when the stage keeps its seeds)."""
        seed = self.replicates.seed(block["training"]["seed"], replicate, stage)
        return block if seed == block["training"]["seed"] else {**block, "training": {**block["training"],
                                                                                           "seed": seed}}

    def folder(self, replicate: int | str, stage: str) -> str:
        """The replicate folder of a file of ``stage`` (rrhf.plan.replicates.Replicates.folder)."""
        return self.replicates.folder(replicate, stage)

    def online_for(self, name: str) -> dict[str, Any]:
        """What OP-{k}[+KL] means (rrhf.config.blocks.OnlineSchedule): k, the KL coefficient (0 without +KL),
        sampler."""
        setting = self.setting(name)
        return {"steps_per_sample": setting.number, "kl_coef": self.resampling.kl_coef if setting.with_kl else 0.0,
                "sampler": self.setting_spec(name)["sampler"]}

    def sampling_for(self, sampler: str, replicate: int | str = 0, batch_size: int | None = None) -> dict[str, Any]:
        """The ``sampling`` block as a job of one sampler sees it in a replicate: that sampler only (changing another
        re-runs nothing here), the replicate's seed, and ``batch_size`` (online rounds') where given."""
        sampling = self.config["sampling"]
        return {**sampling, "seed": self.replicates.seed(sampling["seed"], replicate, "sampling"),
                "samplers": {sampler: sampling["samplers"][sampler]},
                "batch_size": batch_size or sampling["batch_size"]}

    def prompt_subset(self, split: str) -> dict[str, Any]:
        """Which prompts of a split a stage uses (rrhf.config.blocks.PromptSubset)."""
        return {"limit": self.config["data"][f"{split}_prompts"], "seed": self.data.selection_seed,
                "key": f"data.{split}_prompts", "max_tokens": self.data.max_prompt_tokens}

    def own_training_sets(self) -> list[str]:
        """Settings that build their own training set (not reusing another's)."""
        return [name for name, spec in self.settings.items() if "training_set" not in spec]

    # --- models -------------------------------------------------------------------------------------------------

    def display_name(self, model: str) -> str:
        return self.models[model]["display_name"]

    def built_models(self, kind: str) -> list[str]:
        return [name for name, spec in self.models.items() if spec.get("build", {}).get("kind") == kind]

    def reward_builds(self) -> list[tuple[int, str]]:
        """(replicate, models entry) of every reward model built here, in every replicate."""
        return [(r, name) for r in self.replicates.numbers() for name in self.built_models("reward")]

    def build(self, name: str, replicate: int | str = 0) -> dict[str, Any]:
        """The build recipe of a models entry, with the replicate's training seed (a tokenizer has none)."""
        build = self.models[name]["build"]
        build = self.with_seed(build, "models", replicate) if "training" in build else build
        on_policy = build.get("on_policy")
        if on_policy:  # the replies are sampled from the replicate's models: a models-stage seed
            seed = self.replicates.seed(on_policy["seed"], replicate, "models")
            build = build if seed == on_policy["seed"] else {**build, "on_policy": {**on_policy, "seed": seed}}
        return build

    def on_policy_policies(self, name: str, replicate: int | str = 0) -> dict[str, str]:
        """The policies whose replies a reward build's on-policy pairs hold (name -> model path); {} without."""
        on_policy = self.models[name]["build"].get("on_policy") or {}
        return {policy: self.model_path(policy, replicate) for policy in on_policy.get("policies", [])}

    def on_policy_file(self, name: str, replicate: int | str = 0) -> list[str]:
        """A reward build's on-policy preference pairs as a job input: [the file], or [] when it has none."""
        if not self.on_policy_policies(name, replicate):
            return []
        return [paths.ON_POLICY_PAIRS(replicate=self.folder(replicate, "models"), name=name)]

    def model_path(self, name: str, replicate: int | str = 0) -> str:
        """Where a model loads from: its build or import folder (a replicate's for every build but a tokenizer), or
        its configured hub id / local path."""
        spec = self.models[name]
        if "build" not in spec and not needs_import(spec):
            return spec["path"]
        shared = needs_import(spec) or spec["build"]["kind"] == "tokenizer"  # never re-seeded by a replicate
        return paths.MODEL(replicate="" if shared else self.folder(replicate, "models"), name=name)

    def model_input(self, name: str, replicate: int | str = 0) -> list[str]:
        """The model as a job input: its build or import folder or a local path; nothing for a hub id."""
        path, spec = self.model_path(name, replicate), self.models[name]
        return [path] if "build" in spec or needs_import(spec) or Path(path).exists() else []

    def reward_model_source(self, replicate: int | str = 0) -> str | dict[str, Any]:
        """How jobs load the reward model: its path, or, for another format or with trust_remote_code, a dict of
        path, format, backbone and trust_remote_code (rrhf.models.loading.load_reward_model takes either)."""
        spec = self.models[self.reward_model]
        if spec.get("format", "transformers") == "transformers" and not spec.get("trust_remote_code", False):
            return self.model_path(self.reward_model, replicate)
        return {"path": self.model_path(self.reward_model, replicate), "format": spec.get("format", "transformers"),
                "backbone": spec.get("backbone"), "trust_remote_code": spec.get("trust_remote_code", False)}

    def reward_model_input(self, replicate: int | str = 0) -> list[str]:
        """The reward model (and a local backbone folder) as job inputs: nothing for hub ids."""
        backbone = self.models[self.reward_model].get("backbone")
        local_backbone = [backbone] if backbone and Path(backbone).exists() else []
        return self.model_input(self.reward_model, replicate) + local_backbone

    # --- files --------------------------------------------------------------------------------------------------

    @staticmethod
    def dataset_file(dataset: str, split: str) -> str:
        return paths.DATASET(dataset=dataset, split=split)

    def dataset_source_files(self, dataset: str, split: str) -> list[str]:
        """Local input files of a dataset split: an anthropic_jsonl file, a local hub-format folder; none else."""
        spec = self.config["datasets"][dataset]
        if spec["source"] == "anthropic_jsonl":
            return [spec["file"] if spec.get("file") else spec["files"][split]]
        return [spec["name"]] if spec["source"] == "hub" and Path(spec["name"]).exists() else []

    def data_file(self, split: str) -> str:
        """The split of the experiment's dataset (data.dataset)."""
        return self.dataset_file(self.data.dataset, split)

    def scored_file(self, policy: str, setting: str, replicate: int | str = 0) -> str | None:
        """The training set a setting trains on (its own, or the one it reuses); None for OP-{k}[+KL], whose
        responses are sampled during training (results/models/{policy}/{setting}/online_samples.parquet)."""
        if self.setting(setting).kind == "online":
            return None
        setting = self.trained_setting(setting)
        iterated = self.setting(setting).kind == "iterated"
        own = setting if iterated else self.settings[setting].get("training_set", setting)
        return paths.TRAINING_SET(replicate=self.folder(replicate, self.training_set_stage(own)), policy=policy,
                                  setting=own)

    def training_set_stage(self, setting: str) -> str:
        """The last stage a setting's training set depends on: training for IP-{n} (n >= 2: sampled by a
        trained model), sampling when it samples, models when it is the provided replies only (their rewards)."""
        iteration = self.setting(setting).iteration
        if iteration and iteration > 1:
            return "training"
        return "sampling" if self.setting_spec(setting)["sampler"] else "models"

    def setting_parts(self, policy: str, setting: str, replicate: int | str = 0) -> dict[str, str]:
        """The scored parts a setting's training set is made of: sampled responses and/or the provided ones.
        IP-{n}'s samples come from IP-(n-1)'s model, under results/rewards/{policy}/IP-{n}/."""
        spec = self.setting_spec(setting)
        parts = {}
        if spec["sampler"]:
            folder = self.folder(replicate, self.training_set_stage(setting))
            parts["sampled"] = (
                paths.ITERATED_REWARDS(replicate=folder, policy=policy, iteration=setting, sampler=spec["sampler"])
                if self.setting(setting).kind == "iterated" else
                paths.REWARDS(replicate=folder, policy=policy, sampler=spec["sampler"]))
        if spec["provided"]:
            parts["provided"] = self.provided_rewards_file(replicate)
        return parts

    def provided_rewards_file(self, replicate: int | str = 0) -> str:
        """The rewards of the dataset's own replies to the training prompts (they change with the reward
        model)."""
        return paths.PROVIDED_REWARDS(replicate=self.folder(replicate, "models"))

    def trained_model(self, policy: str, setting: str, replicate: int | str = 0) -> str:
        """The folder of the model a setting trains (IP-1's is resampling.setting's)."""
        return paths.TRAINED_MODEL(replicate=self.folder(replicate, "training"), policy=policy,
                                   setting=self.trained_setting(setting))

    def previous_iteration_model(self, policy: str, setting: str, replicate: int | str = 0) -> str | None:
        """The model IP-(n-1) trained, for IP-{n} with n >= 2 (IP-1's is resampling.setting's); None otherwise."""
        n = self.setting(setting).iteration
        return self.trained_model(policy, f"IP-{n - 1}", replicate) if n and n > 1 else None

    def starting_model(self, policy: str, setting: str, replicate: int | str = 0) -> str:
        """The model a setting's training starts from (and IP-{n} samples with): IP-(n-1)'s for IP-{n}, n >= 2;
        the untrained policy otherwise."""
        return self.previous_iteration_model(policy, setting, replicate) or self.model_path(policy, replicate)

    def starting_model_input(self, policy: str, setting: str, replicate: int | str = 0) -> list[str]:
        previous = self.previous_iteration_model(policy, setting, replicate)
        return [previous] if previous else self.model_input(policy, replicate)

    def evaluated_model(self, policy: str, setting: str, replicate: int | str = 0) -> str:
        """The model an evaluation uses: the one the setting trained, or the untrained policy for "none"."""
        if setting == "none":
            return self.model_path(policy, replicate)
        return self.trained_model(policy, setting, replicate)

    def evaluated_model_input(self, policy: str, setting: str, replicate: int | str = 0) -> list[str]:
        if setting == "none":
            return self.model_input(policy, replicate)
        return [self.evaluated_model(policy, setting, replicate)]

    def evaluation_stage(self, setting: str) -> str:
        """The last stage an evaluation depends on: models for an untrained policy (greedy decoding), sampling
        for best-of-n, training for a trained model."""
        if setting == "none":
            return "models"
        return "sampling" if self.setting(setting).kind == "best_of_n" else "training"

    def evaluation_file(self, model: str, setting: str, name: str, replicate: int | str = 0) -> str:
        """A table row's evaluation file in a replicate; an IP-1 row reads resampling.setting's (the same model,
        evaluated once)."""
        folder = self.folder(replicate, self.evaluation_stage(setting))
        return paths.EVALUATION(replicate=folder, policy=model, setting=self.trained_setting(setting), name=name)

    def agreement_training_sets(self, replicate: int | str = 0) -> dict[str, str]:
        """{policy}/{training set} -> scored file, for every training set a table row trains on."""
        sets = {}
        for rows in self.tables.values():
            for row in rows:
                if row.setting is not None and parse_setting(row.setting, self.settings) is not None \
                        and self.setting(row.setting).trains_with_rrhf:
                    path = self.scored_file(self.policies[row.policy], row.setting, replicate)
                    if path:
                        sets[path.split("scored/", 1)[1].removesuffix(".parquet")] = path
        return sets

    # --- resources ----------------------------------------------------------------------------------------------

    def rule_resources(self, rule: str) -> dict[str, int]:
        """A heavy rule's cluster resources (gpu, cpus_per_task, mem_mb, runtime): the config's resources section,
        replaced key by key by the rule's own entry under resources.rules."""
        return self.resources.for_rule(rule)

    def rule_threads(self, rule: str) -> int:
        """Threads of a rule's jobs: its cpus_per_task (what SLURM gives it, and what it uses locally)."""
        return self.rule_resources(rule)["cpus_per_task"]

    def training_about(self, setting: str) -> dict[str, Any]:
        """The config behind a trained model, for its report caption: the setting and the block it used."""
        if self.setting(setting).kind == "ppo":
            return {"ppo": self.ppo_for(0, setting)}
        if self.setting(setting).kind == "fine_grained":
            return self.studies["fine_grained"].training_about(setting)
        about = {"setting": self.setting_spec(setting), "rank_weight": self.rank_weight(setting),
                 "rrhf": self.config["rrhf"]}
        if self.setting(setting).follows_resampling:
            about["resampling"] = self.config["resampling"]
        return about
