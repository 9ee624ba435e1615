"""Config files themselves: readable, valid YAML (or JSON), a mapping at the top, no key given twice.

The Snakefile checks the files it is given before anything else; ``python -m rrhf.config.files FILE...``
does the same by hand and names the file and line (Snakemake reads --configfile files before the workflow runs
and names neither).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml


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


def replaces_default_config(command_line: dict[str, Any] | None) -> bool:
    """Whether the command line's config (its --configfile files and --config values merged, as Snakemake holds
    it) replaces the default config/config.yaml rather than overlaying it: it sets
    ``replaces_default_config: true``, as the complete configs config/paper.yaml and config/real.yaml do."""
    return (command_line or {}).get("replaces_default_config", False) is True


# Entries of these collections are of one of several kinds, told by the key they carry. An entry of one kind laid
# key by key over the default's entry of another kind would carry both.
ENTRY_KINDS = {"models": ("path", "build"), "settings": ("training_set", "sampler")}


def overlay_problems(default: str | os.PathLike, command_line: dict[str, Any] | None) -> list[str]:
    """What goes wrong when the command line's config is laid over the ``default`` config file key by key: an
    entry of ``models`` or ``settings`` of another kind than the default's entry of that name (a ``path`` model
    over a ``build`` one), which would mix the two."""
    base = yaml.safe_load(Path(default).read_text()) or {}
    problems = []
    for collection, kinds in ENTRY_KINDS.items():
        for name, entry in ((command_line or {}).get(collection) or {}).items():
            under = (base.get(collection) or {}).get(name)
            if not isinstance(entry, dict) or not isinstance(under, dict):
                continue
            given = [kind for kind in kinds if kind in entry]
            kept = [kind for kind in kinds if kind in under and kind not in entry]
            if given and kept:
                default_name = f"{Path(default).parent.name}/{Path(default).name}"
                problems.append(
                    f"{collection}.{name}: your config file gives `{given[0]}`, and {default_name}'s entry of that "
                    f"name has `{kept[0]}`; laid over the default key by key (as Snakemake lays config files), the "
                    f"entry would have both. Give the entry another name, or make your file a complete config "
                    f"(replaces_default_config: true, every block given)")
    return problems


def check_overlay(default: str | os.PathLike, command_line: dict[str, Any] | None) -> None:
    """Raise ValueError naming each of :func:`overlay_problems`."""
    problems = overlay_problems(default, command_line)
    if problems:
        raise ValueError("config file error(s):\n  " + "\n  ".join(problems))


def main(argv: list[str] | None = None) -> int:
    """``python -m rrhf.config.files FILE...``: print each config file's problem as FILE:LINE:COLUMN (Snakemake
    reads --configfile files before the workflow runs, and names neither file nor line); 1 when any has one."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rrhf.config.files", description=main.__doc__)
    parser.add_argument("files", nargs="+", help="config files (YAML or JSON)")
    found = [problem for path in parser.parse_args(argv).files if (problem := config_file_problem(path))]
    print("\n".join(found) or "no problems found")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
