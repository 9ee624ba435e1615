"""Checks of a config that run before the first job: config files, model paths, sampler settings, the device.

Each ``*_problems`` function takes the (validated) config dict and returns a list of problem strings, each
naming the config key; workflow/rules/common.smk's ``check_references`` joins them into one error. The
model-path rule (:func:`is_hub_id`, :func:`model_source_problem`) is shared with the loaders in
:mod:`rrhf.models`, so a job that gets a bad path says the same. Nothing here imports torch unless the config
names a CUDA device, so the check costs Snakemake's start-up next to nothing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

# A hub id: "name" or "org/name", optionally "@revision". Anything else (or anything that exists on disk) is local.
HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)?(?:@[A-Za-z0-9_./-]+)?")
LOCAL_PREFIXES = ("/", "./", "../", "~", ".\\", "..\\")
CHECKPOINT_SUFFIXES = (".pt", ".bin", ".safetensors", ".pth")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model",
                   "vocab.txt")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
# What a local folder of each kind must hold (one of the files of each), for model_source_problem.
FILES_OF = {"config.json": ("config.json",), "tokenizer": TOKENIZER_FILES, "weights": WEIGHT_FILES}
NEEDED = {"model": ("config.json", "tokenizer", "weights"), "backbone": ("config.json", "tokenizer"),
          "tokenizer": ("tokenizer",)}
VALUE_HEAD_CHECKPOINT = "hf_ckpt.pt"  # rrhf.value_head_reward.CHECKPOINT_FILE (that module imports torch)
DEVICE = re.compile(r"auto|cpu|mps|(?:cuda|xpu|npu|hpu)(?::[0-9]+)?")


# --- config files -------------------------------------------------------------------------------------------

class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one silently)."""


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping gives the same key twice."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            first = seen[key]
            raise DuplicateKeyError("while reading a mapping", node.start_mark,
                                       f"the key {key!r} appears again (first on line {first.line + 1}); the "
                                       "second would silently replace the first", key_node.start_mark)
        seen[key] = key_node.start_mark
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def config_file_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with a config file, as "FILE:LINE:COLUMN: problem" (None when nothing is): not readable,
    invalid YAML (the parser's mark), a key given twice in one mapping, empty, or a top level that is not a
    mapping of keys. JSON files are read as JSON; YAML templates (``__use_yte__``) are left to Snakemake."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return f"{path}: cannot be read as a UTF-8 text file ({error})"
    if path.suffix == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_json_pairs(path))
        except json.JSONDecodeError as error:
            return f"{path}:{error.lineno}:{error.colno}: not valid JSON ({error.msg})"
        except ValueError as error:
            return str(error)
    elif "__use_yte__" in text:
        return None
    else:
        try:
            data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            if isinstance(error, DuplicateKeyError):
                return f"{where}: {error.problem}"
            context = f" ({error.context})" if error.context else ""
            hint = "; YAML indents with spaces, never tabs" if "\t" in text else ""
            return f"{where}: not valid YAML: {error.problem}{context}{hint}"
        except yaml.YAMLError as error:
            return f"{path}: not valid YAML ({error})"
    if data is None:
        return f"{path}: the config file is empty (expected keys such as datasets:, models:, policies:)"
    if not isinstance(data, dict):
        return (f"{path}:1: the top level of a config file must be a mapping of keys (key: value), "
                f"not a {type(data).__name__}")
    return None


def _json_pairs(path: Path):
    def pairs(items: list[tuple[str, Any]]) -> dict:
        keys = [key for key, _ in items]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"{path}: key(s) {repeated} appear twice in one object")
        return dict(items)
    return pairs


def check_config_files(paths: list[str | os.PathLike]) -> None:
    """Raise ValueError naming each config file that :func:`config_file_problem` finds fault with."""
    problems = [problem for path in paths if (problem := config_file_problem(path))]
    if problems:
        raise ValueError("config file error(s):\n  " + "\n  ".join(problems))


# --- model paths --------------------------------------------------------------------------------------------

def is_hub_id(path: str) -> bool:
    """Whether a model path means a Hugging Face hub repo: it does not exist on disk, does not start like a
    path (/, ./, ../, ~), does not end like a checkpoint file, and is ``name`` or ``org/name`` (optionally
    ``@revision``). Everything else is a local path."""
    if Path(path).expanduser().exists() or path.startswith(LOCAL_PREFIXES):
        return False
    return bool(HUB_ID.fullmatch(path)) and not path.partition("@")[0].endswith(CHECKPOINT_SUFFIXES)


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE is set to a true value in this process's environment."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _local_problem(path: str, kind: str) -> str | None:
    """What is missing from a local model path of ``kind`` (see :func:`model_source_problem`), or None."""
    local = Path(path).expanduser()
    if not local.exists():
        return f"{path!r} does not exist (looked for {local.resolve()})"
    if kind == "value_head_checkpoint":
        if local.is_dir() and not (local / VALUE_HEAD_CHECKPOINT).is_file():
            return f"{path!r} is a folder without {VALUE_HEAD_CHECKPOINT} (the value-head checkpoint)"
        return None
    if not local.is_dir():
        return f"{path!r} is a file; expected a model folder (one that save_pretrained wrote)"
    missing = [what for what in NEEDED[kind] if not any((local / name).is_file() for name in FILES_OF[what])]
    if missing:
        listing = sorted(p.name for p in local.iterdir())[:8]
        return (f"{path!r} is not a transformers model folder: it has no {' and no '.join(missing)} "
                f"(it holds {listing or 'nothing'})")
    return None


def _hub_cache_problem(repo: str, kind: str) -> str | None:
    """With the hub offline, whether the file a ``kind`` needs from hub repo ``repo`` is in the local cache."""
    from huggingface_hub import constants, try_to_load_from_cache

    repo_id, _, revision = repo.partition("@")
    filename = VALUE_HEAD_CHECKPOINT if kind == "value_head_checkpoint" else "config.json"
    try:
        cached = try_to_load_from_cache(repo_id, filename, revision=revision or None)
    except ValueError as error:  # an id huggingface_hub refuses
        return f"{repo!r} is neither a local path nor a valid hub id ({error})"
    if isinstance(cached, str):
        return None
    return (f"{repo!r} is not a local folder (none at {Path(repo).resolve()}), and as a hub id it is not in the "
            f"Hugging Face cache ({constants.HF_HUB_CACHE}: no {filename}) while the hub is offline "
            "(offline: true / HF_HUB_OFFLINE=1); download it first (`hf download "
            f"{repo_id}`), give a local folder, or set offline: false")


def model_source_problem(path: str, kind: str = "model", offline: bool | None = None) -> str | None:
    """What is wrong with a model path, or None: a local path must exist and hold what ``kind`` needs; a hub id
    must be in the local cache when the hub is ``offline`` (default: :func:`hub_offline`).

    ``kind``: ``model`` (config.json, tokenizer files and weights), ``backbone`` (config.json and tokenizer
    files: a value-head checkpoint's backbone, whose weights are never read), ``tokenizer`` (tokenizer files
    only; a hub id is not looked up), or ``value_head_checkpoint`` (a checkpoint file, or a folder holding
    hf_ckpt.pt).
    """
    if not is_hub_id(path):
        return _local_problem(path, kind)
    if kind != "tokenizer" and (offline if offline is not None else hub_offline()):
        return _hub_cache_problem(path, kind)
    return None


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


# --- samplers and device ------------------------------------------------------------------------------------

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


def main(argv: list[str] | None = None) -> int:
    """``python -m rrhf.config_checks FILE...``: print each config file's problem as FILE:LINE:COLUMN (Snakemake
    reads --configfile files before the workflow runs, and names neither file nor line); 1 when any has one."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rrhf.config_checks", description=main.__doc__)
    parser.add_argument("files", nargs="+", help="config files (YAML or JSON)")
    found = [problem for path in parser.parse_args(argv).files if (problem := config_file_problem(path))]
    print("\n".join(found) or "no problems found")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
