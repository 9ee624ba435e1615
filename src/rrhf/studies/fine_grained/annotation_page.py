"""The fine-grained feedback annotation page: one self-contained HTML file (no network, no external files; it
works opened from disk) for annotating records in FineGrainedRLHF's qa-feedback layout the way their
annotation interface does.

One record at a time (Previous / Next): the question, the passages and prediction 1. The annotator selects
characters of prediction 1 with the mouse, picks an error type and clicks "Mark span": the span (character
offsets into prediction 1, end exclusive, leading and trailing whitespace trimmed) is highlighted and listed,
with an optional explanation and a delete button. Missing information is a type, a ``passage_id`` and sentence
ids, numbered from 1 as FineGrainedRLHF's reward-model scripts read them (``passage_id`` p is ``passages[p - 1]``,
sentence s of it is ``passages[p - 1][s]``, after the title); the page shows those numbers next to the passages. The
six pairwise preferences between the four predictions are radio buttons. "Save" downloads
``qa_feedback.json`` in exactly the layout :meth:`FeedbackRecord.as_json` writes (same keys, same order), which
:func:`rrhf.data.qa_feedback.read_qa_feedback` reads; "Load" reads such a file back in, so work can go on.

Offsets count characters as Python does (code points): the page converts from the browser's UTF-16 units. The
records travel as JSON in a ``<script type="application/json">`` element with ``<``, ``>`` and ``&`` escaped, so
no text can close it; record text reaches the page only through ``textContent``; and a Content-Security-Policy
lets only the page's own script (by its hash) run and nothing be fetched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rrhf.data.qa_feedback import ERROR_TYPES, MISSING_TYPES, PREDICTIONS, PREFERENCE_PAIRS, FeedbackRecord
from rrhf.report.offline_pages import OFFLINE_HEAD, embedded_json, offline_page, script_json

FILE_NAME = "qa_feedback.json"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #1e293b;
       max-width: 70em; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin: 1.4em 0 0.4em; } h3 { font-size: 0.95em; margin: 0.3em 0; }
p.note { color: #475569; max-width: 60em; }
.toolbar { display: flex; gap: 0.8em; align-items: center; flex-wrap: wrap; position: sticky; top: 0;
           background: #fff; padding: 0.4em 0; border-bottom: 1px solid #e2e8f0; }
#status { min-height: 1.3em; color: #9a3412; }
.text { white-space: pre-wrap; }
.prediction { border: 1px solid #94a3b8; background: #f8fafc; padding: 0.7em; font-size: 1.05em; line-height: 1.7; }
.controls { margin: 0.5em 0; display: flex; gap: 0.8em; align-items: center; flex-wrap: wrap; }
.passage { border-left: 3px solid #cbd5e1; padding-left: 0.7em; margin-bottom: 0.6em; }
.sentences { list-style: none; padding-left: 0; margin: 0; }
.sid { display: inline-block; min-width: 2em; color: #64748b; font-variant-numeric: tabular-nums; }
mark { color: inherit; border-bottom: 2px solid #334155; }
mark.overlap { border-bottom-style: double; }
.t0 { background: #fde68a; } .t1 { background: #bfdbfe; } .t2 { background: #ddd6fe; }
.t3 { background: #fecaca; } .t4 { background: #fed7aa; }
.swatch { padding: 0 0.4em; font-size: 0.85em; }
#errors li, #missing li { margin: 0.3em 0; }
#errors .type { font-weight: 600; padding: 0 0.3em; } .offsets { color: #64748b; margin: 0 0.5em; }
input.explanation { width: 22em; margin: 0 0.5em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(15em, 1fr)); gap: 0.6em; }
.reply { border: 1px solid #cbd5e1; padding: 0.5em; }
fieldset.pair { display: inline-block; margin: 0.3em; border: 1px solid #cbd5e1; }
textarea { width: 100%; font: inherit; }
"""

# The page's JavaScript, kept in its own file beside this one (package data).
SCRIPT = (Path(__file__).parent / "annotation_page.js").read_text(encoding="utf-8")

TEMPLATE = OFFLINE_HEAD + """\
<p class="note">Select characters of prediction 1 with the mouse, choose an error type and click <b>Mark span</b>;
list missing information by passage and sentence ids; choose the preferences. <b>Save</b> downloads
<code>@@FILE_NAME@@</code> (the qa-feedback layout); <b>Load</b> reads such a file to go on with it. Nothing
leaves this page but the file you save.</p>
<div class="toolbar">
<button type="button" id="previous">Previous</button>
<span id="counter"></span>
<button type="button" id="next">Next</button>
<button type="button" id="save">Save</button>
<label>Load <input type="file" id="load" accept=".json,application/json"></label>
</div>
<p id="status" role="status" aria-live="polite"></p>
<main id="record">
<section><h2>Question</h2><p id="question" class="text"></p></section>
<section id="passages-section"><h2>Passages</h2><div id="passages"></div></section>
<section><h2>Prediction 1</h2>
<div id="prediction" class="text prediction"></div>
<div class="controls">
<label>Error type <select id="error-type"></select></label>
<button type="button" id="mark-span">Mark span</button>
<span id="legend"></span>
</div>
<ol id="errors"></ol>
</section>
<section><h2>Missing information</h2>
<div class="controls">
<label>Type <select id="missing-type"></select></label>
<label>passage_id <input id="passage-id" inputmode="numeric" placeholder="e.g. 1" size="6"></label>
<label>sentence ids <input id="sentence-ids" placeholder="e.g. 1, 3" size="12"></label>
<button type="button" id="add-missing">Add</button>
</div>
<ol id="missing"></ol>
</section>
<section><h2>Corrected prediction (optional)</h2><textarea id="corrected" rows="3"></textarea></section>
<section><h2>Preferences</h2><div id="predictions" class="grid"></div><div id="preferences"></div></section>
<details><summary>Gold answer</summary><p id="gold" class="text"></p></details>
</main>
<script type="application/json" id="config">@@CONFIG@@</script>
<script type="application/json" id="records">@@RECORDS@@</script>
<script>@@SCRIPT@@</script>
</body>
</html>
"""


def embedded_records(page: str) -> list[dict[str, Any]]:
    """The records a page made by :func:`annotation_page` carries (its ``<script id="records">`` JSON)."""
    return embedded_json(page, "records", "an annotation page")


def annotation_page(records: list[FeedbackRecord], title: str) -> str:
    """The annotation page for ``records`` (see the module's docstring), as one self-contained HTML text."""
    config = {"errorTypes": list(ERROR_TYPES), "missingTypes": list(MISSING_TYPES),
              "pairs": [list(pair) for pair in PREFERENCE_PAIRS], "predictions": PREDICTIONS, "fileName": FILE_NAME}
    return offline_page(TEMPLATE, SCRIPT, title, STYLE, FILE_NAME=FILE_NAME, CONFIG=script_json(config),
                        RECORDS=script_json([record.as_json() for record in records]))
