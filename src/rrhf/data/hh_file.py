"""Putting Anthropic's HH file where config/real.yaml reads it (`make real`): a link to a copy the user gives by
path, or, with no path and the Hub reachable, the file from the Anthropic/hh-rlhf dataset repository.

    python -m rrhf.data.hh_file DESTINATION [--from PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

REPOSITORY = "Anthropic/hh-rlhf"
FILE = "harmless-base/test.jsonl.gz"
SOURCE_URL = f"https://github.com/anthropics/hh-rlhf/blob/master/{FILE}"


def place_hh_file(destination: str | Path, source: str | Path | None = None) -> Path:
    """Make ``destination`` the HH file: a symbolic link to ``source`` (which must be a file); without one, keep a
    file already there, else download it from the Hub (:data:`REPOSITORY`, :data:`FILE`). Raises
    FileNotFoundError saying where to get it when neither works."""
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        source = Path(source).expanduser()
        if not source.is_file():
            raise FileNotFoundError(f"HH_FILE={source}: no such file (Anthropic's {FILE}, {SOURCE_URL})")
        if destination.is_symlink() or destination.exists():
            destination.unlink()
        destination.symlink_to(source.resolve())
        return destination
    if destination.is_file():
        return destination
    try:
        from huggingface_hub import hf_hub_download

        os.environ["HF_HUB_OFFLINE"] = "0"
        downloaded = hf_hub_download(REPOSITORY, FILE, repo_type="dataset")
    except Exception as error:  # noqa: BLE001 - offline, no such repo, no network: all say the same to the user
        raise FileNotFoundError(
            f"{destination}: no HH file here, and the Hub gave none ({type(error).__name__}: {error}). Give the "
            f"file: `make real HH_FILE=PATH/{Path(FILE).name}` (Anthropic's {FILE}, {SOURCE_URL})") from None
    shutil.copyfile(downloaded, destination)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination")
    parser.add_argument("--from", dest="source", default=None, help="a copy of the file to link to")
    args = parser.parse_args(argv)
    try:
        placed = place_hh_file(args.destination, args.source or None)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"HH data: {placed}" + (f" -> {os.readlink(placed)}" if placed.is_symlink() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
