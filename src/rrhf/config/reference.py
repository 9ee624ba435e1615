"""config/README.md, the configuration reference, written from config/schema.yaml.

    python -m rrhf.config.reference            # print it
    python -m rrhf.config.reference --write    # write config/README.md

The schema is the one place keys, defaults and descriptions live; this page only lays them out. A test fails
when the page is not what the schema gives (tests/test_docs.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rrhf.config.schema import load_schema

OUTPUT = Path(__file__).resolve().parents[3] / "config" / "README.md"  # in the repository, beside config/schema.yaml
HEADER = """# Configuration reference

Written from [`schema.yaml`](schema.yaml) by `python -m rrhf.config.reference --write`; edit the schema, not this
page (a test fails when they differ). Every key is listed with its type, its default and what it does. A key
that is not listed is an error, and so is a value the schema refuses; the checks the schema cannot make (names
that point at nothing, sizes tied to the data, numbers that are not finite, impossible targets) run before the
first job and name the key ([`docs/troubleshooting.md`](../docs/troubleshooting.md)).

[`config.yaml`](config.yaml) is the tiny default (built offline on a CPU in minutes),
[`paper.yaml`](paper.yaml) the paper's setup, [`tables.yaml`](tables.yaml) the rows of each table.
"""


def type_of(schema: dict[str, Any]) -> str:
    """A short type for the table: the enum's values, the JSON type(s), or the referenced definition."""
    if "$ref" in schema:
        return f"[{schema['$ref'].split('/')[-1]}](#{schema['$ref'].split('/')[-1]})"
    if "enum" in schema:
        return " \\| ".join(json.dumps(value) for value in schema["enum"])
    kinds = schema.get("type", "object" if "properties" in schema else "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    text = " or ".join(kinds)
    if "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        text = f"mapping of name -> {type_of(schema['additionalProperties'])}"
    bounds = [f"{symbol} {schema[key]}" for key, symbol in (("minimum", ">="), ("exclusiveMinimum", ">"),
                                                             ("maximum", "<="), ("exclusiveMaximum", "<"))
              if key in schema]
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def default_of(name: str, schema: dict[str, Any], required: list[str]) -> str:
    if "default" in schema:
        return "" if schema["default"] == {} else f"`{json.dumps(schema['default'])}`"
    return "required" if name in required else "(absent)"


def one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def rows(schema: dict[str, Any], prefix: str) -> list[str]:
    """Table rows of every key under ``schema``, nested objects flattened to dotted paths."""
    lines = []
    required = schema.get("required", [])
    for name, subschema in schema.get("properties", {}).items():
        key = f"{prefix}{name}"
        lines.append(f"| `{key}` | {type_of(subschema)} | {default_of(name, subschema, required)} | "
                     f"{one_line(subschema.get('description'))} |")
        if "properties" in subschema:
            lines += rows(subschema, f"{key}.")
    return lines


def section(title: str, anchor: str, schema: dict[str, Any]) -> list[str]:
    lines = [f'<a id="{anchor}"></a>', f"## {title}", "", one_line(schema.get("description")), ""]
    if "properties" in schema:
        lines += ["| key | type | default | description |", "|---|---|---|---|", *rows(schema, "")]
    elif isinstance(schema.get("additionalProperties"), dict) and "properties" in schema["additionalProperties"]:
        entry = schema["additionalProperties"]
        lines += [f"Each entry: {one_line(entry.get('description'))}", "",
                  "| key | type | default | description |", "|---|---|---|---|", *rows(entry, "NAME.")]
    else:
        lines += [f"Type: {type_of(schema)}; default: {default_of(anchor, schema, [])}."]
    return lines + [""]


def reference() -> str:
    """The whole page."""
    schema = load_schema()
    lines = [HEADER, "## Top-level keys", "", one_line(schema.get("description")), "",
             "| key | type | default |", "|---|---|---|"]
    required = schema.get("required", [])
    for name, subschema in schema["properties"].items():
        lines.append(f"| [`{name}`](#{name}) | {type_of(subschema)} | {default_of(name, subschema, required)} |")
    lines.append("")
    for name, subschema in schema["properties"].items():
        lines += section(f"`{name}`", name, subschema)
    lines += ["# Shared definitions", ""]
    for name, subschema in schema["$defs"].items():
        lines += section(f"`{name}`", name, subschema)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rrhf.config.reference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help=f"write {OUTPUT} instead of printing")
    if parser.parse_args(argv).write:
        OUTPUT.write_text(reference())
    else:
        print(reference(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
