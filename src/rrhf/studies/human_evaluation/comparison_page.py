"""The blind pairwise comparison page (the human evaluation of the paper's Table 3): one self-contained HTML file
(no network, no external files; it works opened from disk) on which an annotator compares two replies to the
same prompt and says which is better, or that they tie.

One pair at a time: the prompt (a dialogue, whitespace kept) and the two replies side by side, labelled only
"Reply 1" (``left``) and "Reply 2" (``right``); nothing on the page tells which system wrote which (whoever builds
the tasks shuffles the sides and keeps the key). Three buttons, "Reply 1 is better", "Tie" and "Reply 2 is
better", record ``left``, ``tie`` or ``right`` for the pair and move on to the next one; the shown pair's
judgment is highlighted. Keyboard (not while typing in a field): ``1`` or ArrowLeft judges left, ``2``,
ArrowDown or ``t`` a tie, ``3`` or ArrowRight right; Backspace, ArrowUp or PageUp go to the previous pair and
PageDown to the next without judging. The work in progress (judgments, the shown pair, the annotator's name)
is kept in the browser's localStorage under the export and batch, so a reload loses nothing (where the browser
allows storage for a page opened from disk).

"Save" downloads ``judgments_{export}_batch{batch}.json`` (:func:`judgments_file_name`), whatever is judged so
far (the status line says how many pairs are left), as JSON indented by two spaces and ended by a newline::

    {"export": "<export>", "batch": <int>, "annotator": "<name as typed, trimmed>",
     "judgments": [{"pair_id": "<pair_id>", "judgment": "left" | "tie" | "right"}, ...]}

with only the judged pairs, in the order of the tasks. "Load" reads such a file back (it must be for the same
export and batch, and name only the page's pairs), so work can go on elsewhere.

The tasks travel as JSON in a ``<script type="application/json">`` element escaped by
:func:`rrhf.report.offline_pages.script_json`, so no text can close it; task text reaches the page only
through ``textContent``; and a Content-Security-Policy lets only the page's own script (by its hash) run and
nothing be fetched.
"""

from __future__ import annotations

import html
import numbers
import re
from pathlib import Path
from typing import Any

from rrhf.report.offline_pages import OFFLINE_HEAD, embedded_json, offline_page, script_json

TASK_KEYS = ("pair_id", "prompt", "left", "right")
JUDGMENTS = ("left", "tie", "right")
# An export's name goes into the saved file's name: letters, digits, ".", "_" and "-" only.
EXPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #1e293b;
       max-width: 80em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1em 0 0.4em; }
p.note { color: #475569; max-width: 60em; }
kbd { border: 1px solid #94a3b8; border-radius: 3px; padding: 0 0.3em; font-size: 0.9em; }
.toolbar { display: flex; gap: 0.8em; align-items: center; flex-wrap: wrap; position: sticky; top: 0;
           background: #fff; padding: 0.4em 0; border-bottom: 1px solid #e2e8f0; z-index: 1; }
#counter { font-variant-numeric: tabular-nums; min-width: 11em; }
#status { min-height: 1.3em; color: #9a3412; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
#prompt { border-left: 3px solid #cbd5e1; padding: 0.4em 0.7em; background: #f8fafc; }
.replies { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
.reply { border: 1px solid #94a3b8; padding: 0.7em; line-height: 1.6; }
.choices { display: flex; gap: 1em; justify-content: center; margin: 1em 0; }
.choices button { font-size: 1.05em; padding: 0.5em 1.2em; border: 2px solid #94a3b8; background: #fff;
                  border-radius: 4px; cursor: pointer; }
.choices button.chosen { border-color: #1d4ed8; background: #dbeafe; font-weight: 600; }
#judgment { text-align: center; color: #475569; }
"""

# The page's JavaScript, kept in its own file beside this one (package data).
SCRIPT = (Path(__file__).parent / "comparison_page.js").read_text(encoding="utf-8")

TEMPLATE = OFFLINE_HEAD + """\
<p class="note">Read the prompt and both replies, then say which reply is better, or that they tie. Keys:
<kbd>1</kbd> or <kbd>&larr;</kbd> Reply 1 is better, <kbd>2</kbd>, <kbd>&darr;</kbd> or <kbd>t</kbd> tie,
<kbd>3</kbd> or <kbd>&rarr;</kbd> Reply 2 is better; <kbd>Backspace</kbd> or <kbd>&uarr;</kbd> back to the
previous pair, <kbd>PageUp</kbd> / <kbd>PageDown</kbd> previous / next pair without judging. Your work is kept
in this browser as you go; <b>Save</b> downloads <code>@@FILE_NAME@@</code>, <b>Load</b> reads such a file to
go on with it. Nothing leaves this page but the file you save.</p>
<div class="toolbar">
<button type="button" id="previous">Previous</button>
<span id="counter"></span>
<button type="button" id="next">Next</button>
<label>Your name <input type="text" id="annotator" autocomplete="name" size="18"></label>
<button type="button" id="save">Save</button>
<label>Load <input type="file" id="load" accept=".json,application/json"></label>
</div>
<p id="status" role="status" aria-live="polite"></p>
<main id="pair">
<section><h2>Prompt</h2><div id="prompt" class="text"></div></section>
<div class="replies">
<section><h2>Reply 1</h2><div id="left" class="text reply"></div></section>
<section><h2>Reply 2</h2><div id="right" class="text reply"></div></section>
</div>
<div class="choices">
<button type="button" id="choose-left">Reply 1 is better</button>
<button type="button" id="choose-tie">Tie</button>
<button type="button" id="choose-right">Reply 2 is better</button>
</div>
<p id="judgment"></p>
</main>
<script type="application/json" id="tasks">@@TASKS@@</script>
<script>@@SCRIPT@@</script>
</body>
</html>
"""


def judgments_file_name(export: str, batch: int) -> str:
    """The name of the file the page saves: ``judgments_{export}_batch{batch}.json``."""
    return f"judgments_{export}_batch{batch}.json"


def _checked_tasks(tasks: list[dict]) -> list[dict[str, str]]:
    """``tasks`` as plain dicts of their four string fields, in :data:`TASK_KEYS` order; raises ValueError when
    one lacks a field, has another, has a field that is not a string, or repeats a ``pair_id``."""
    if not tasks:
        raise ValueError("a comparison page needs at least one task")
    checked, seen = [], set()
    for index, task in enumerate(tasks):
        if not isinstance(task, dict) or set(task) != set(TASK_KEYS):
            keys = sorted(task) if isinstance(task, dict) else type(task).__name__
            raise ValueError(f"task {index}: should have exactly the keys {list(TASK_KEYS)}, has {keys}")
        for key in TASK_KEYS:
            if not isinstance(task[key], str):
                raise ValueError(f"task {index}: {key} should be a string, is {type(task[key]).__name__}")
        if task["pair_id"] in seen:
            raise ValueError(f"task {index}: pair_id {task['pair_id']!r} appears more than once")
        seen.add(task["pair_id"])
        checked.append({key: task[key] for key in TASK_KEYS})
    return checked


def embedded_tasks(page: str) -> dict[str, Any]:
    """What a page made by :func:`comparison_page` carries (its ``<script id="tasks">`` JSON):
    ``{"export": ..., "batch": ..., "tasks": [...]}``."""
    data = embedded_json(page, "tasks", "a comparison page")
    return {key: data[key] for key in ("export", "batch", "tasks")}


def comparison_page(export: str, batch: int, tasks: list[dict], title: str) -> str:
    """The blind pairwise comparison page for ``tasks`` (each ``{"pair_id", "prompt", "left", "right"}``, all
    strings, ``pair_id`` unique) of batch ``batch`` of export ``export`` (see the module's docstring), as one
    self-contained HTML text. Raises ValueError on a bad export name, batch or task."""
    if not isinstance(export, str) or not EXPORT_NAME.fullmatch(export):
        raise ValueError(f"export {export!r} should be letters, digits, '.', '_' and '-' (it names the saved file)")
    if isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 0:
        raise ValueError(f"batch {batch!r} should be a non-negative integer")
    batch = int(batch)  # a numpy integer too, written as a JSON number
    file_name = judgments_file_name(export, batch)
    data = {"export": export, "batch": batch, "tasks": _checked_tasks(tasks), "fileName": file_name,
            "judgments": list(JUDGMENTS)}
    return offline_page(TEMPLATE, SCRIPT, title, STYLE, FILE_NAME=html.escape(file_name), TASKS=script_json(data))
