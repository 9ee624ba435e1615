"""config/schema.yaml, the one place where every config key is described and given its default.

:func:`fill_defaults` validates a config against it and fills in every missing default, in place, as Snakemake's
``validate(..., set_default=True)`` does for the workflow; :func:`block_defaults` gives one block's defaults
(``rrhf``, ``$defs/training``, ...) for code that builds a block from a few keys (tests, notebooks, benchmarks).
No default is written anywhere else.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")  # config/schema.yaml links here: the installed package has it


@functools.cache
def load_schema() -> dict[str, Any]:
    """config/schema.yaml as a dict (read once per process)."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _set_defaults(validator_class):
    """A validator class that, like Snakemake's, sets each missing property's default before validating it."""
    import jsonschema

    validate_properties = validator_class.VALIDATORS["properties"]

    def properties(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties})


@functools.cache
def filling_validator():
    """Draft 2020-12's validator that sets each missing property's default before validating it."""
    import jsonschema

    return _set_defaults(jsonschema.Draft202012Validator)


def schema_at(path: str) -> dict[str, Any]:
    """The schema of one key, as a standalone schema (its ``$ref``s resolve): a dotted path of ``properties``
    (``rrhf``, ``ppo.kl``, ``evaluation.decoding``), from the top or from a ``$defs`` entry (``$defs/training``,
    ``$defs/training.lora``)."""
    schema = load_schema()
    parts = path.split(".")
    node = schema["$defs"][parts.pop(0).removeprefix("$defs/")] if path.startswith("$defs/") else schema
    for part in parts:
        node = node["properties"][part]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")]
    return {"$defs": schema["$defs"], **node}


def fill_defaults(config: dict[str, Any], path: str | None = None) -> dict[str, Any]:
    """Validate ``config`` (the whole config, or the block at ``path``: see :func:`schema_at`) and fill in every
    default the schema gives, in place; return it. Raises jsonschema's ValidationError naming the key."""
    schema = load_schema() if path is None else schema_at(path)
    filling_validator()(schema).validate(config)
    return config


def block_defaults(path: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """The block at ``path`` with ``values`` given and the schema's defaults for the rest (a copy); a value the
    schema refuses raises ValueError naming its key."""
    import jsonschema

    try:
        return fill_defaults(copy.deepcopy(values or {}), path)
    except jsonschema.ValidationError as error:
        where = ".".join([path, *map(str, error.absolute_path)])
        raise ValueError(f"{where}: {error.message}") from None


def leaf_defaults() -> dict[str, list[Any]]:
    """Every key the schema gives a default other than ``{}``, by key name: {name: [default, ...]} (a name such
    as ``batch_size`` has different defaults in different blocks)."""
    found: dict[str, list[Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, subschema in node.get("properties", {}).items():
                if isinstance(subschema, dict) and "default" in subschema and subschema["default"] != {}:
                    found.setdefault(name, []).append(subschema["default"])
            for value in node.values():
                walk(value)

    walk(load_schema())
    return found
