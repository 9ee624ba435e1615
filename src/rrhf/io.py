"""File helpers shared by every stage: atomic writes, Parquet with provenance, logging.

Every output is written to a temporary path next to its destination and renamed
into place, so a failed job never leaves a half-written file behind.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PROVENANCE_KEY = b"rrhf"
PARTIAL_MARK = ".partial-"  # in the name of every file or folder being written aside (".NAME.partial-XXXX")
log = logging.getLogger("rrhf")


def remove_partials(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Remove the entries of ``folder`` whose names fully match the regular expression ``pattern`` (what a
    killed job left half-written); return them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if re.fullmatch(pattern, entry.name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def remove_stale_partials(path: str | os.PathLike) -> list[Path]:
    """Remove what an earlier, killed write of ``path`` left beside it (``.NAME.partial-*``); return it.

    Only one job writes a given output, so a partial copy of it that exists when the job starts is stale.
    """
    path = Path(path)
    removed = remove_partials(path.parent, re.escape(f".{path.name}{PARTIAL_MARK}") + ".*")
    for entry in removed:
        log.info("removed a half-written copy of %s left by an earlier run: %s", path, entry)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``.NAME.partial-XXXX``); rename it onto ``path`` on success.

    On an exception the temporary file or folder is removed and nothing is left
    at ``path``. A kill leaves it behind; the next write of ``path`` removes it
    first (:func:`remove_stale_partials`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(path)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}{PARTIAL_MARK}", dir=path.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}{PARTIAL_MARK}", dir=path.parent)
        os.close(handle)
        tmp = Path(name)
    try:
        yield tmp
        if directory and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def naming_damage(path: str, what: str):
    """Re-raise an error from reading ``path`` (a truncated or corrupt weights file, weights of another shape, a
    broken config) as a ValueError that names the path and what was being read, the original error kept."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, ValueError, RuntimeError, EOFError, KeyError, SafetensorError) as error:
        if isinstance(error, FileNotFoundError) or str(path) in str(error):
            raise
        raise ValueError(f"{path}: cannot read {what}: the files are damaged or do not fit "
                         f"({type(error).__name__}: {error})") from error


def write_parquet(frame: pd.DataFrame, path: str | os.PathLike, provenance: dict[str, Any]) -> None:
    """Write ``frame`` atomically, recording ``provenance`` (what produced it) in the file metadata."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(table.schema.metadata or {})
    metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_provenance(path: str | os.PathLike) -> dict[str, Any]:
    """Return the provenance dict stored by :func:`write_parquet`."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(PROVENANCE_KEY, b"{}"))


def read_parquet(path: str | os.PathLike, required_columns: list[str]) -> pd.DataFrame:
    """Read a Parquet file and check it has ``required_columns``; the error names the file."""
    frame = pd.read_parquet(path)
    missing = [c for c in required_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    return frame


def _finite_or_null(data: Any) -> Any:
    """``data`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: _finite_or_null(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite_or_null(value) for value in data]
    return data


def write_json(data: Any, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically; NaN and infinities become null."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_null(data), indent=2, sort_keys=True, default=str,
                                  allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The JSON document at ``path``; an error names the file."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None


def setup_logging(log_path: str | os.PathLike | None) -> logging.Logger:
    """Send the ``rrhf`` logger to stderr and, from the first process only, to ``log_path``; return it.

    An exception that ends the process from here on is logged there too, with its traceback (Snakemake
    points at the rule's log when a job fails).
    """
    logger = logging.getLogger("rrhf")
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    rank = int(os.environ.get("RANK", "0"))  # set by accelerate launch / torchrun
    formatter = logging.Formatter("%(asctime)s %(levelname)s " + (f"[rank {rank}] " if rank else "") + "%(message)s")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    logger.addHandler(stream)
    if log_path and rank == 0:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, mode="w")
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
    logger.propagate = False
    sys.excepthook = _log_uncaught
    global _PEAK_LOGGED
    if not _PEAK_LOGGED:
        atexit.register(_log_gpu_peak)
        _PEAK_LOGGED = True
    return logger


_PEAK_LOGGED = False
GPU_PEAK_MESSAGE = "peak GPU memory of this process: %.3f GiB allocated, %.3f GiB reserved (torch's allocator)"


def _log_gpu_peak() -> None:
    """At exit, the process's peak GPU memory in its log, where it used CUDA (beside the plan of docs/cluster.md;
    `make gpu-check` reads it)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return
    logging.getLogger("rrhf").info(GPU_PEAK_MESSAGE, torch.cuda.max_memory_allocated() / 2 ** 30,
                                   torch.cuda.max_memory_reserved() / 2 ** 30)


def start_job(log_path: str | os.PathLike | None, output: str | os.PathLike) -> logging.Logger:
    """:func:`setup_logging`, then remove (from the first process) what a killed earlier run of this job left
    half-written beside ``output``, saying so in the log; return the logger."""
    logger = setup_logging(log_path)
    if int(os.environ.get("RANK", "0")) == 0:
        remove_stale_partials(output)
    return logger


def _log_uncaught(kind, value, traceback) -> None:
    """sys.excepthook once logging is set up: the traceback goes to the rule's log as well as stderr."""
    logging.getLogger("rrhf").error("%s: %s", kind.__name__, value, exc_info=(kind, value, traceback))


def gather_parquet(inputs: list[str], output: str, sort_by: list[str], log_path: str | None = None) -> pd.DataFrame:
    """Concatenate shard files with identical columns into ``output``, sorted by ``sort_by``.

    The output's provenance is the first shard's, with the list of shards.
    """
    frames = [pd.read_parquet(path) for path in inputs]
    for path, frame in zip(inputs, frames):
        if list(frame.columns) != list(frames[0].columns):
            raise ValueError(f"{path}: columns {list(frame.columns)} differ from {inputs[0]}'s "
                             f"{list(frames[0].columns)}")
    gathered = pd.concat(frames, ignore_index=True).sort_values(sort_by, kind="stable").reset_index(drop=True)
    write_parquet(gathered, output, {**read_provenance(inputs[0]), "shards": list(map(str, inputs))})
    setup_logging(log_path).info("gathered %d rows from %d shards into %s", len(gathered), len(inputs), output)
    return gathered
