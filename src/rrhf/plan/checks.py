"""Every check of a config made before the first job, each in one place.

Each ``*_problems(...)`` returns a list of problem strings, each naming its config key (empty when nothing is
wrong); :func:`plan_problems` runs them all on a :class:`rrhf.plan.plan.Plan`, and
:meth:`rrhf.plan.plan.Plan.from_config` stops with every problem found. The library's stages call the same
functions where they can meet the same mistake (a config given to them directly): those of
:mod:`rrhf.config.block_checks`. Nothing here imports torch unless the config names a CUDA device, so the checks cost
Snakemake's start-up next to nothing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from rrhf.config.block_checks import lora_fsdp_problem, lora_pretrain_problem, ppo_length_problems
from rrhf.models.sources import model_source_problem
from rrhf.plan import paths
from rrhf.plan.model_checks import architecture_problems, role_problems, value_head_problems
from rrhf.plan.settings import setting_problem
from rrhf.plan.table_rows import table_row_problems

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

DEVICE = re.compile(r"auto|cpu|mps|(?:cuda|xpu|npu|hpu)(?::[0-9]+)?")
# Rules that train in one process on one GPU (PPO's rollouts, its reference and value head are one process's).
SINGLE_PROCESS_RULES = {"train_ppo": "PPO"}  # (and the fine-grained study's train_fine_grained_ppo)
# What a dataset source needs besides `source`.
SOURCE_KEYS = {"hub": "name", "anthropic_jsonl": "files"}


def model_path_problems(config: dict[str, Any]) -> list[str]:
    """Problems of the ``path`` (and ``backbone``) of every models entry the run uses (a policy, the reward or
    evaluation model, a build's init), each naming its key; hub ids are looked up in the cache when the
    config says ``offline: true``."""
    models, offline = config["models"], config.get("offline", True)
    used = {*config["policies"].values(), config["reward_model"], config["evaluation_model"]}
    used |= {spec["build"].get(key) for spec in models.values() if "build" in spec for key in ("init", "tokenizer")}
    problems = []
    for name in sorted(n for n in used if n in models and "path" in models[n]):
        spec = models[name]
        value_head = spec.get("format", "transformers") == "value_head_checkpoint"
        checks = [("path", "value_head_checkpoint" if value_head else "model")]
        if value_head and "backbone" in spec:
            checks.append(("backbone", "backbone"))
        for key, kind in checks:
            if problem := model_source_problem(str(spec[key]), kind, offline):
                problems.append(f"models.{name}.{key}: {problem}")
    return problems


def sampler_problems(config: dict[str, Any]) -> list[str]:
    """Beam settings that cannot work, for each sampler a setting uses: num_beams not divisible by
    num_beam_groups (diverse_beam), or more responses kept than beams (beam, diverse_beam)."""
    used = {spec.get("sampler") for spec in config["settings"].values()} & {"beam", "diverse_beam"}
    problems = []
    for name in sorted(used):
        params = config["sampling"]["samplers"][name]
        key = f"sampling.samplers.{name}"
        beams, groups = params["num_beams"], params["num_beam_groups"] if name == "diverse_beam" else 1
        if beams % groups:
            problems.append(f"{key}.num_beams: {beams} beams cannot be split into num_beam_groups {groups} "
                            "equal groups; make num_beams a multiple of num_beam_groups")
        if params["num_responses"] > beams:
            problems.append(f"{key}.num_responses: {params['num_responses']} responses per prompt, but beam "
                            f"search keeps only num_beams {beams}; raise num_beams or lower num_responses")
    return problems


def device_problems(config: dict[str, Any], cuda_available: bool | None = None) -> list[str]:
    """``device`` that is not a torch device name, or a CUDA device when this machine has none and no rule asks
    for a GPU (so the jobs run here). ``cuda_available`` defaults to torch's answer (torch is imported only
    for a CUDA device)."""
    device = str(config.get("device", "auto"))
    if not DEVICE.fullmatch(device):
        return [f"device: {device!r} is not a device name; use auto, cpu, cuda, cuda:N or mps"]
    if not device.startswith("cuda"):
        return []
    resources = config.get("resources", {})
    if resources.get("gpu", 0) > 0 or any(rule.get("gpu", 0) > 0 for rule in resources.get("rules", {}).values()):
        return []  # jobs that ask for GPUs run where they get them (a cluster's GPU nodes)
    if cuda_available is None:
        import torch

        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return []
    return [f"device: {device!r}, but this machine has no CUDA GPU (torch.cuda.is_available() is False) and no "
            "rule asks for one (resources.gpu is 0), so the jobs would run here; use device: auto (CUDA when "
            "present, else the CPU) or cpu, or ask for GPUs with resources.gpu on a cluster"]


def config_problems(config: dict[str, Any]) -> list[str]:
    """All checks of this module on one config: samplers, device, model paths."""
    return [*sampler_problems(config), *device_problems(config), *model_path_problems(config)]


def finite_number_problems(config: Any, key: str = "") -> list[str]:
    """Numbers that are NaN or infinite (``.nan``, ``.inf`` in YAML), which the schema's bounds let through."""
    if isinstance(config, float) and not math.isfinite(config):
        return [f"{key}: {config} is not a finite number"]
    if isinstance(config, dict):
        return [p for name, value in config.items() for p in finite_number_problems(value, f"{key}.{name}".strip("."))]
    if isinstance(config, list):
        return [p for i, value in enumerate(config) for p in finite_number_problems(value, f"{key}[{i}]")]
    return []


def accelerate_config_problems(plan: "Plan") -> list[str]:
    """An accelerate_config that is not a readable YAML mapping."""
    if not plan.accelerate_config:
        return []
    path = Path(plan.accelerate_config)
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        return [f"accelerate_config: {plan.config['accelerate_config']!r} cannot be read as YAML ({error})"]
    if not isinstance(loaded, dict):
        return [f"accelerate_config: {path} is not an accelerate config (a mapping of keys)"]
    return []


def lora_problems(plan: "Plan") -> list[str]:
    """LoRA where it cannot work: a pre-training build (nothing trained to adapt), or a trainer that runs under
    an FSDP accelerate_config (every launched trainer does, on any number of GPUs: rrhf.training.launch.needs_launch),
    as merging the adapters before saving needs whole weights."""
    accelerate = {}
    if plan.accelerate_config and not accelerate_config_problems(plan):
        accelerate = yaml.safe_load(Path(plan.accelerate_config).read_text())
    fsdp = accelerate.get("distributed_type") == "FSDP"
    trainings = [("rrhf.training", plan.config["rrhf"]["training"], "rrhf")] + [
        (f"models.{name}.build.training", spec["build"]["training"], spec["build"]["kind"])
        for name, spec in plan.models.items() if "training" in spec.get("build", {})]
    problems = []
    for key, training, kind in trainings:
        if "lora" not in training:
            continue
        if kind == "pretrain":
            problems.append(lora_pretrain_problem(key))
        elif fsdp:
            problems.append(lora_fsdp_problem(key, f"accelerate_config {plan.config['accelerate_config']}"))
    return problems


def reference_problems(plan: "Plan") -> list[str]:
    """Names that point at nothing: datasets, models, policies, training sets, the resampling setting."""
    config, models, settings = plan.config, plan.models, plan.settings
    problems = []

    def expect(value, pool, key):
        if value not in pool:
            problems.append(f"{key}: {value!r} is not one of {sorted(pool)}")

    expect(config["data"]["dataset"], config["datasets"], "data.dataset")
    for role, name in plan.policies.items():
        expect(name, models, f"policies.{role}")
    expect(plan.reward_model, models, "reward_model")
    expect(plan.evaluation_model, models, "evaluation_model")
    for name, spec in models.items():
        build = spec.get("build")
        if not build:
            continue
        expect(build["dataset"], config["datasets"], f"models.{name}.build.dataset")
        if build["kind"] in ("sft", "reward"):
            expect(build.get("init"), models, f"models.{name}.build.init")
        if build["kind"] == "pretrain":
            expect(build.get("tokenizer"), models, f"models.{name}.build.tokenizer")
    for name, spec in config["datasets"].items():
        needed = SOURCE_KEYS.get(spec["source"])
        if spec["source"] == "anthropic_jsonl":
            if ("file" in spec) == ("files" in spec):
                problems.append(f"datasets.{name}: source anthropic_jsonl needs either `files` (a file per split) "
                                "or `file` (one file, split by test_fraction and seed), not both")
            files = {"file": spec["file"]} if "file" in spec else {f"files.{split}": path for split, path
                                                                   in spec.get("files", {}).items()}
            problems += [f"datasets.{name}.{key}: {path} does not exist (looked in {Path(path).absolute().parent}); "
                         "for HH's harmless-base/test.jsonl.gz: `make real HH_FILE=PATH` links it there"
                         for key, path in files.items() if not Path(path).expanduser().is_file()]
        elif needed and needed not in spec:
            problems.append(f"datasets.{name}: source {spec['source']} needs the key {needed!r}")
    own = [s for s, v in settings.items() if "training_set" not in v]
    for name, spec in settings.items():
        if "training_set" in spec:
            expect(spec["training_set"], own, f"settings.{name}.training_set")
    expect(plan.resampling.setting, [s for s, v in settings.items() if v.get("sampler")], "resampling.setting")
    for name, setting in config["table_settings"].items():
        parsed = plan.setting(setting) if setting_problem(setting, settings) is None else None
        if parsed is None or not parsed.trains_with_rrhf:
            problems.append(f"table_settings.{name}: {setting!r} is not one of {sorted(settings)} nor IP-n, OP-k "
                            "or OP-k+KL (n, k whole numbers from 1)")
    return problems + value_head_problems(plan)


def single_process_problems(plan: "Plan", rules: dict[str, str] = SINGLE_PROCESS_RULES) -> list[str]:
    """Trainers that run in one process (they sample while they train) asked for several GPUs."""
    return [f"resources.rules.{rule}.gpu: {what} runs in one process on one GPU; set it to 1 (or 0)"
            for rule, what in rules.items() if plan.rule_resources(rule)["gpu"] > 1]


def rule_name_problems(plan: "Plan", names: list[str]) -> list[str]:
    """Entries of resources.rules that name none of ``names`` (the rules that take resources): a typo would
    silently keep the defaults."""
    return [f"resources.rules.{rule}: no rule takes resources under the name {rule!r}; the names are "
            f"{', '.join(sorted(names))}" for rule in sorted(set(plan.resources.rules) - set(names))]


def table_problems(plan: "Plan") -> list[str]:
    """Rows of config/tables.yaml that cannot be made (rrhf.plan.table_rows)."""
    problems = list(plan.table_problems)
    for rows in plan.tables.values():
        for row in rows:
            problems += table_row_problems(row, plan.policies, plan.settings, f"{plan.tables_file.name}: {row.where}")
    return problems


def dataset_rows(path: str | Path) -> int | None:
    """Rows of a prepared dataset split (its Parquet metadata, nothing else read), or None when not made yet."""
    if not Path(path).is_file():
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


def size_problems(plan: "Plan") -> list[str]:
    """Sizes the schema cannot relate: prompts asked for against a prepared dataset's rows, shards against the
    generation batches they split, RRHF batches against the processes that share them."""
    problems = []
    prompts = {}
    for split in ("train", "test"):
        asked, rows = plan.config["data"][f"{split}_prompts"], dataset_rows(plan.data_file(split))
        if asked is not None and rows is not None and asked > rows:
            problems.append(f"data.{split}_prompts: {asked} prompts asked for, but {plan.data_file(split)} has only "
                            f"{rows}; ask for at most {rows} (null takes them all)")
        prompts[split] = asked if asked is not None else rows
    train = prompts["train"]
    if plan.shards > 1 and train is not None:
        batches = math.ceil(train / plan.sampling.batch_size)
        if batches < plan.shards:
            problems.append(f"shards: {plan.shards} shards, but {train} training prompts in generation batches of "
                            f"sampling.batch_size {plan.sampling.batch_size} make {batches} batch(es), and a shard "
                            f"samples whole batches: shards {batches}..{plan.shards - 1} would be empty; use at most "
                            f"{batches} shards or a smaller sampling.batch_size")
    batch_size = plan.rrhf.training.batch_size
    for rule in ("train_rrhf", "train_online_rrhf"):
        processes = max(1, plan.rule_resources(rule)["gpu"])
        if train is not None and math.ceil(train / batch_size) < processes:
            problems.append(f"rrhf.training.batch_size: {train} training prompts make "
                            f"{math.ceil(train / batch_size)} batch(es) of {batch_size}, fewer than the {processes} "
                            f"processes of {rule} (resources gpu): lower the batch size or the GPUs")
    return problems


# Target paths that name a policy model and a setting: a trained model (or a file in it), an evaluation, a
# training set, and IP-n's samples and rewards.
SETTING_TARGETS = ((paths.TRAINED_MODEL, "setting"), (paths.EVALUATION_FOLDER, "setting"),
                   (paths.TRAINING_SET, "setting"), (paths.ITERATED_SAMPLES, "iteration"),
                   (paths.ITERATED_REWARDS, "iteration"))


def target_setting(target: str) -> tuple[str, str] | None:
    """(model, setting) a target path names, or None for a path that names none."""
    for template, wildcard in SETTING_TARGETS:
        found = template.parse(target, within=template is not paths.TRAINING_SET)
        if found and (wildcard == "setting" or found[wildcard].startswith("IP-")):
            return found["policy"], found[wildcard]
    return None


def target_problems(plan: "Plan", targets: list[str]) -> list[str]:
    """Targets of the command line that name a setting or policy that cannot exist (``IP-0``, ``best-of-x``, a
    model that is no policy), which Snakemake would only answer with "No rule to produce"."""
    policies = set(plan.policies.values())
    problems = []
    for target in targets:
        named = target_setting(str(target))
        if named is None or named[0] in ("dataset", "reward_model"):
            continue
        model, setting = named
        if model not in policies:
            problems.append(f"target {target}: {model!r} is not a policy model; policies: {sorted(policies)}")
        elif problem := setting_problem(setting, plan.settings):
            problems.append(f"target {target}: setting {problem}")
    return problems


def plan_problems(plan: "Plan") -> list[str]:
    """Every check of this module on a plan but :func:`rule_name_problems` (the Snakefile knows the rules only
    once they are all read) and :func:`target_problems`; each study checks its own (rrhf.plan.study.Study)."""
    config = plan.config
    return [*finite_number_problems(config), *reference_problems(plan), *role_problems(plan),
            *accelerate_config_problems(plan), *architecture_problems(plan), *lora_problems(plan),
            *config_problems(config),
            *ppo_length_problems(plan.ppo.training.max_length, plan.ppo.generation.max_new_tokens),
            *single_process_problems(plan), *table_problems(plan), *size_problems(plan)]
