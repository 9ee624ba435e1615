"""Where a model comes from: a local folder (which must hold what its role needs) or a hub id (which must be
in the local cache when the hub is offline). Shared by the checks before any job and the loaders in the jobs."""

from __future__ import annotations

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
VALUE_HEAD_CHECKPOINT = "hf_ckpt.pt"  # rrhf.value_head_reward.CHECKPOINT_FILE (that module imports torch)



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
