"""What every self-contained offline page shares (the fine-grained annotation page, the human evaluation's
comparison page): its head, whose Content-Security-Policy lets only the page's own script (by its hash) run and
nothing be fetched; JSON carried safely in a ``<script type="application/json">`` element; and filling a template's
@@NAME@@ placeholders in one pass."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from typing import Any

# The head of every offline page (the fine-grained annotation page, the human evaluation's comparison page): only the
# page's own script, by its
# hash, may run, and nothing may be fetched.
OFFLINE_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src '@@SCRIPT_HASH@@'; \
style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>@@STYLE@@</style>
</head>
<body>
<h1>@@TITLE@@</h1>
"""


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside a ``<script>`` element: ``<``, ``>`` and ``&`` as ``\\u`` escapes
    (only strings can hold them), so no text can close the element or open a comment; JSON.parse undoes them."""
    text = json.dumps(value)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def embedded_json(page: str, element: str, what: str) -> Any:
    """The JSON an offline page carries in its ``<script type="application/json" id="{element}">``; raises
    naming ``what`` the page should be when it has none."""
    match = re.search(rf'<script type="application/json" id="{element}">(.*?)</script>', page, re.DOTALL)
    if match is None:
        raise ValueError(f"not {what}: no {element} element")
    return json.loads(match.group(1))


def offline_page(template: str, script: str, title: str, style: str, **parts: str) -> str:
    """``template`` (:data:`OFFLINE_HEAD` and a body) with its @@NAME@@ placeholders filled: the script, its
    Content-Security-Policy hash, the escaped title, the style and ``parts``. One pass, so text put in (a title,
    a record) is never searched for placeholders itself."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    parts = {"SCRIPT_HASH": f"sha256-{digest}", "TITLE": html.escape(title), "STYLE": style, "SCRIPT": script,
             **parts}
    return re.sub(r"@@([A-Z_]+)@@", lambda match: parts[match.group(1)], template)
