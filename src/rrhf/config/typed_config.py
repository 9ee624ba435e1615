"""The machinery of the typed config blocks (rrhf.config.blocks): a dataclass per block, built strictly from the
config's dict, with the schema's defaults filled in for code that gives only a few keys."""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from rrhf.config.schema import block_defaults

B = TypeVar("B", bound="Block")


def optional(default: Any = None) -> Any:
    """A field for a key the schema gives no default: absent in the config means ``None``."""
    return field(default=default, metadata={"optional": True})


@dataclass(frozen=True)
class Block:
    """Base of the typed blocks. ``SCHEMA`` is where the block's schema is (see rrhf.config.schema.schema_at)."""

    SCHEMA: ClassVar[str] = ""

    @classmethod
    def from_config(cls: type[B], values: dict[str, Any], key: str | None = None) -> B:
        """The block from its validated config dict; a missing key (one the schema has a default for) or an
        unknown key raises ValueError naming it under ``key`` (default: the block's own path)."""
        return _build(cls, values, key or cls.SCHEMA or cls.__name__)

    @classmethod
    def with_defaults(cls: type[B], values: dict[str, Any] | None = None) -> B:
        """The block with ``values`` given and the schema's defaults for the rest."""
        if not cls.SCHEMA:  # made by the plan from several keys, not a block of the schema: nothing to fill in
            return cls.from_config(values or {})
        return cls.from_config(block_defaults(cls.SCHEMA, values), cls.SCHEMA)

    @classmethod
    def coerce(cls: type[B], value: B | dict[str, Any] | None) -> B:
        """``value`` as this block: itself; built from a whole block of the validated config (as a rule passes
        it) with :meth:`from_config`; or from a few keys with :meth:`with_defaults`, which checks them against
        the schema and fills in the rest."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict) and _complete(cls, value):
            return cls.from_config(value)
        return cls.with_defaults(value)

    def as_config(self) -> dict[str, Any]:
        """The block as the config's dict (what a rule passes and JSON can carry); a key the schema gives no
        default is left out when absent (None), as in the config."""
        values = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.metadata.get("optional"):
                continue
            if isinstance(value, Block):
                value = value.as_config()
            elif isinstance(value, dict):
                value = {key: item.as_config() if isinstance(item, Block) else item for key, item in value.items()}
            values[f.name] = value
        return values


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type[B], values: Any, key: str) -> B:
    if not isinstance(values, dict):
        raise ValueError(f"{key}: expected a mapping of keys, got {type(values).__name__} {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"{key}: unknown key(s) {unknown}; expected {sorted(fields)}")
    missing = sorted(name for name, f in fields.items() if name not in values and not f.metadata.get("optional"))
    if missing:
        raise ValueError(f"{key}: missing key(s) {missing} (a validated config has every key; build a block from "
                         f"a few keys with {cls.__name__}.with_defaults)")
    hints = _hints(cls)
    return cls(**{name: _convert(hints[name], values[name], f"{key}.{name}") for name in fields if name in values})


def _convert(hint: Any, value: Any, key: str) -> Any:
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        hint = next(a for a in arguments if a is not type(None))
        origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, type) and issubclass(hint, Block):
        return _build(hint, value, key)
    if origin is dict and isinstance(arguments[1], type) and issubclass(arguments[1], Block):
        return {name: _build(arguments[1], item, f"{key}.{name}") for name, item in value.items()}
    return value


def _complete(cls: type, values: dict[str, Any]) -> bool:
    """Whether ``values`` has every key of the block, and of its blocks inside (a validated config's block)."""
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in values:
            if not f.metadata.get("optional"):
                return False
            continue
        hint, value = hints[f.name], values[f.name]
        inner = _block_type(hint)
        if inner is not None and isinstance(value, dict) and not _complete(inner, value):
            return False
        if typing.get_origin(hint) is dict and _block_type(typing.get_args(hint)[1]) and isinstance(value, dict):
            entry = _block_type(typing.get_args(hint)[1])
            if not all(isinstance(item, dict) and _complete(entry, item) for item in value.values()):
                return False
    return True


def _block_type(hint: Any) -> type | None:
    """The Block class a field holds (directly or as X | None), else None."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return hint if isinstance(hint, type) and issubclass(hint, Block) else None
