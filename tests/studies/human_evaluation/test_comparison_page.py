"""The blind pairwise comparison page (rrhf.studies.human_evaluation.comparison_page) in a real headless Chromium,
driven with real
keyboard and mouse events over the DevTools protocol (browser_driver): every pair judged with the keyboard, an
answer changed, the judgments saved through the browser's own download; work kept over a reload; a saved file
loaded back; hostile task text shown as text; a batch built from generations judged and read back into Table 3.
The last tests need no browser."""

import base64
import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest
from browser_driver import Browser
from test_human_evaluation import generations

from rrhf.studies.human_evaluation.comparison_page import SCRIPT, comparison_page, embedded_tasks, judgments_file_name
from rrhf.studies.human_evaluation.human_tables import write_table3
from rrhf.studies.human_evaluation.judgments import import_judgments
from rrhf.studies.human_evaluation.pairs import batch_tasks, build_pairs

HOSTILE = "Sure.</script><script>alert(1)</script><script>window.injected = 'script'</script> <!-- Done."
TASKS = [
    {"pair_id": "p01", "prompt": "\n\nHuman: How do I bake bread?\n\nAssistant:",
     "left": "Mix flour, water and yeast.\n  Knead, then bake.", "right": "Buy bread."},
    {"pair_id": "p02", "prompt": "\n\nHuman: Say <b>hello</b>.\n\nAssistant:", "left": HOSTILE,
     "right": "<b>hello</b> &amp; goodbye"},
    {"pair_id": "p03", "prompt": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a colour.\n\nAssistant:",
     "left": "Blue.", "right": "Green, or 🍞-brown."},
    {"pair_id": "p04", "prompt": "\n\nHuman: What is 2 + 2?\n\nAssistant:", "left": "4", "right": "Four."},
    {"pair_id": "p05", "prompt": "\n\nHuman: Goodbye.\n\nAssistant:", "left": "Bye!", "right": "See you."},
]


def write_page(folder, export, batch, tasks=TASKS, title="Which reply is better?"):
    path = folder / "compare.html"
    path.write_text(comparison_page(export, batch, tasks, title), encoding="utf-8")
    return path.as_uri()


def text_of(browser: Browser, selector: str) -> str:
    return browser.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


def chosen(browser: Browser) -> list[str]:
    """The ids of the highlighted judgment buttons."""
    return browser.evaluate("[...document.querySelectorAll('.choices button.chosen')].map(b => b.id)")


def saved_file(browser: Browser, folder, name: str) -> str:
    """Click Save; the downloaded file's text (checked to be named ``name``)."""
    browser.allow_downloads(folder)
    browser.click("#save")
    download = browser.wait_download()
    assert download.suggested_filename == name
    return download.path.read_text(encoding="utf-8")


def judgments_text(export, batch, annotator, judgments) -> str:
    """The file the page saves, byte for byte."""
    content = {"export": export, "batch": batch, "annotator": annotator,
               "judgments": [{"pair_id": pair_id, "judgment": judgment} for pair_id, judgment in judgments]}
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


@pytest.fixture
def page(browser):
    """The browser on a fresh page; the test fails if the page threw. (Pages opened from disk share one
    localStorage, which the page keys by export and batch: each test uses its own export.)"""
    browser.new_page()
    yield browser
    assert browser.exceptions() == []


def test_judging_every_pair_with_the_keyboard_and_saving(page, tmp_path):
    page.navigate(write_page(tmp_path, "keyboard", 3))
    assert text_of(page, "#counter") == "Pair 1 of 5 \u00b7 0 judged"
    assert text_of(page, "#status") == "5 pairs of 5 left to judge."
    assert page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)") \
        == ["Prompt", "Reply 1", "Reply 2"]
    # The dialogue's whitespace is kept, in the text and on screen.
    assert text_of(page, "#prompt") == TASKS[0]["prompt"]
    assert text_of(page, "#left") == TASKS[0]["left"]
    assert page.evaluate("getComputedStyle(document.getElementById('left')).whiteSpace") == "pre-wrap"
    assert page.evaluate("document.getElementById('left').innerText").startswith("Mix flour, water and yeast.\n  Kn")
    assert chosen(page) == [] and text_of(page, "#judgment") == "Not judged yet"

    page.press("1")  # p01: left, on to p02
    assert text_of(page, "#counter") == "Pair 2 of 5 \u00b7 1 judged"
    # p02's hostile text is shown as text and nothing in it ran.
    assert text_of(page, "#left") == HOSTILE
    assert text_of(page, "#right") == TASKS[1]["right"]
    assert text_of(page, "#prompt") == TASKS[1]["prompt"]
    assert page.evaluate("document.querySelectorAll('#pair b').length") == 0
    assert page.evaluate("typeof window.injected") == "undefined"
    page.press("ArrowDown")  # p02: tie
    assert text_of(page, "#counter") == "Pair 3 of 5 \u00b7 2 judged"
    assert text_of(page, "#right") == "Green, or 🍞-brown."
    page.press("3")  # p03: right
    page.press("t")  # p04: tie
    assert text_of(page, "#counter") == "Pair 5 of 5 \u00b7 4 judged"
    assert text_of(page, "#status") == "1 pair of 5 left to judge."
    page.press("ArrowRight")  # p05: right; the last pair stays shown
    assert text_of(page, "#counter") == "Pair 5 of 5 \u00b7 5 judged"
    assert chosen(page) == ["choose-right"]
    assert text_of(page, "#judgment") == "Your judgment: Reply 2 is better"
    assert text_of(page, "#status") == ("All 5 pairs judged: type your name and click Save to download "
                                        "judgments_keyboard_batch3.json.")

    # Back without judging: Backspace, ArrowUp, PageUp; PageDown forward.
    page.press("Backspace")
    assert text_of(page, "#counter") == "Pair 4 of 5 \u00b7 5 judged"
    assert chosen(page) == ["choose-tie"]
    page.press("ArrowUp")
    page.press("PageUp")
    assert text_of(page, "#counter") == "Pair 2 of 5 \u00b7 5 judged"
    assert chosen(page) == ["choose-tie"]
    page.press("PageDown")
    assert text_of(page, "#counter") == "Pair 3 of 5 \u00b7 5 judged"
    assert chosen(page) == ["choose-right"]
    page.press("ArrowLeft")  # p03 changed to left, on to p04
    assert text_of(page, "#counter") == "Pair 4 of 5 \u00b7 5 judged"
    page.press("PageUp")
    assert chosen(page) == ["choose-left"]
    assert page.evaluate("document.getElementById('choose-left').getAttribute('aria-pressed')") == "true"

    # Keys typed into the name field are the name's, not judgments or moves.
    page.click("#annotator")
    page.type_text("  Ada ")
    page.press("2")
    page.press("x")
    page.press("Backspace")
    page.press("ArrowRight")  # at the end of the text: the caret stays
    page.type_text("  ")
    assert page.evaluate("document.getElementById('annotator').value") == "  Ada 2  "
    assert text_of(page, "#counter") == "Pair 3 of 5 \u00b7 5 judged"
    assert chosen(page) == ["choose-left"]

    text = saved_file(page, tmp_path, "judgments_keyboard_batch3.json")
    assert text == judgments_text("keyboard", 3, "Ada 2", [("p01", "left"), ("p02", "tie"), ("p03", "left"),
                                                            ("p04", "tie"), ("p05", "right")])
    assert text_of(page, "#status") == "Saved 5 judgments as judgments_keyboard_batch3.json: all pairs judged."
    assert page.evaluate("typeof window.injected") == "undefined"
    assert not [event for event in page.events if event["method"] == "Page.javascriptDialogOpening"]


def test_a_reload_keeps_the_work_and_saving_part_of_it(page, tmp_path):
    url = write_page(tmp_path, "reload", 1)
    page.navigate(url)
    assert text_of(page, "#counter") == "Pair 1 of 5 \u00b7 0 judged"
    page.click("#choose-tie")  # the mouse works too
    page.press("3")
    page.click("#next")
    page.click("#annotator")
    page.type_text("Grace")
    page.navigate(url)
    assert text_of(page, "#counter") == "Pair 4 of 5 \u00b7 2 judged"
    assert page.evaluate("document.getElementById('annotator').value") == "Grace"
    page.click("#previous")
    page.click("#previous")
    assert chosen(page) == ["choose-right"]

    text = saved_file(page, tmp_path, "judgments_reload_batch1.json")
    assert text == judgments_text("reload", 1, "Grace", [("p01", "tie"), ("p02", "right")])
    assert text_of(page, "#status") == "Saved 2 judgments as judgments_reload_batch1.json; 3 pairs left to judge."
    # Another batch of the same export does not see this one's work.
    page.navigate(write_page(tmp_path, "reload", 2))
    assert text_of(page, "#counter") == "Pair 1 of 5 \u00b7 0 judged"
    assert page.evaluate("document.getElementById('annotator').value") == ""


def test_loading_a_saved_file(page, tmp_path):
    good = tmp_path / "good.json"
    # Not in task order: the page saves in task order.
    good.write_text(judgments_text("loading", 7, "Alan", [("p04", "right"), ("p01", "left"), ("p03", "tie")]))
    other_batch = tmp_path / "other.json"
    other_batch.write_text(judgments_text("loading", 8, "Alan", [("p01", "left")]))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(judgments_text("loading", 7, "Alan", [("p01", "left"), ("p99", "tie")]))

    page.navigate(write_page(tmp_path, "loading", 7))
    page.press("2")  # p01: tie, before any loading
    for path, message in [(other_batch, 'it is for export "loading" batch 8, this page is export "loading" batch 7'),
                          (unknown, 'judgments[1]: pair_id "p99" is not on this page')]:
        page.set_file_input("#load", path)
        # the file is read asynchronously: wait for this file's message, not the one before it
        page.wait_for(f"document.getElementById('status').textContent.startsWith('Could not load {path.name}')")
        assert text_of(page, "#status") == f"Could not load {path.name}: {message}"
        assert text_of(page, "#counter") == "Pair 2 of 5 \u00b7 1 judged"  # the page's work is kept

    page.set_file_input("#load", good)
    page.wait_for("document.getElementById('status').textContent.startsWith('Loaded')")
    assert text_of(page, "#status") == "Loaded 3 judgments from good.json. 2 pairs of 5 left to judge."
    assert text_of(page, "#counter") == "Pair 2 of 5 \u00b7 3 judged"  # the first pair not judged
    assert page.evaluate("document.getElementById('annotator').value") == "Alan"
    assert chosen(page) == []
    page.click("#previous")
    assert chosen(page) == ["choose-left"]  # the file's, not the tie judged before
    page.press("PageDown")
    page.press("PageDown")
    assert chosen(page) == ["choose-tie"]
    page.press("PageDown")
    assert chosen(page) == ["choose-right"]

    text = saved_file(page, tmp_path, "judgments_loading_batch7.json")
    assert text == judgments_text("loading", 7, "Alan", [("p01", "left"), ("p03", "tie"), ("p04", "right")])


def test_a_built_batch_judged_in_the_browser_reaches_table3(page, tmp_path):
    key = build_pairs([{"number": 1, "a": "A", "b": "B", "a_generations": generations("A"),
                        "b_generations": generations("B")}], 6, 2, 2, 0)
    export, tasks = key["export"].iloc[0], batch_tasks(key, 1, 0)
    assert len(tasks) == 5  # the 2 shared pairs and 3 of the 6 counted ones
    path = tmp_path / "batch_1.html"
    path.write_text(comparison_page(export, 1, tasks, "Which reply is better? Batch 1 of 2"), encoding="utf-8")
    page.navigate(path.as_uri())
    pressed = ["1", "3", "ArrowLeft", "t", "ArrowRight"]
    for number, (task, key_name) in enumerate(zip(tasks, pressed), start=1):
        assert text_of(page, "#counter") == f"Pair {number} of 5 \u00b7 {number - 1} judged"
        assert (text_of(page, "#left"), text_of(page, "#right")) == (task["left"], task["right"])
        page.press(key_name)
    page.click("#annotator")
    page.type_text("Ada")
    text = saved_file(page, tmp_path, judgments_file_name(export, 1))
    saved = tmp_path / "judgments" / judgments_file_name(export, 1)  # the download is named by its id
    saved.parent.mkdir()
    saved.write_text(text, encoding="utf-8")

    key.to_parquet(tmp_path / "pairs.parquet", index=False)
    judged = import_judgments(str(tmp_path / "pairs.parquet"), [str(saved)], str(tmp_path / "judged.parquet"))
    assert len(judged) == 5 and set(judged["annotator"]) == {"Ada"} and set(judged["batch"]) == {1}
    write_table3([str(tmp_path / "judged.parquet")], [{"a": "A", "b": "B"}], str(tmp_path / "table3.csv"))
    row = pd.read_csv(tmp_path / "table3.csv").iloc[0]

    # What the keys said, unblinded by hand: a judgment for the side shown where A was is a win.
    judgment_of = {"1": "left", "ArrowLeft": "left", "t": "tie", "3": "right", "ArrowRight": "right"}
    left_of, shared = key.set_index("pair_id")["left"], key.set_index("pair_id")["shared"]
    outcomes = []
    for task, key_name in zip(tasks, pressed):
        judgment = judgment_of[key_name]
        if shared[task["pair_id"]]:
            continue
        a_shown = "left" if left_of[task["pair_id"]] == "a" else "right"
        outcomes.append("tie" if judgment == "tie" else "win" if judgment == a_shown else "lose")
    assert len(outcomes) == 3 and len(set(outcomes)) > 1
    for outcome in ("win", "tie", "lose"):
        assert row[outcome] == pytest.approx(100 * outcomes.count(outcome) / 3, abs=0.005)
    assert (row["a"], row["b"], row["pairs"], row["judgments"], row["annotators"], row["shared_pairs"]) == (
        "A", "B", 3, 3, 1, 2)
    assert pd.isna(row["identical"]) and pd.isna(row["non_contradicting"])  # one annotator: no agreement


def test_page_embeds_its_tasks_and_is_offline():
    page = comparison_page("rrhf-vs-chatgpt", 4, TASKS, "A & B </title>")
    assert embedded_tasks(page) == {"export": "rrhf-vs-chatgpt", "batch": 4, "tasks": TASKS}
    assert page.count("</script>") == 2  # the replies' "</script>" is escaped: only the page's own two
    assert page.count("<!--") == 0 and "<b>hello" not in page
    assert re.search(r"https?:", page, re.IGNORECASE) is None
    assert not re.search(r"\b(src|href)=", page)
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)
    assert "<title>A &amp; B &lt;/title&gt;</title>" in page
    assert "judgments_rrhf-vs-chatgpt_batch4.json" in page
    assert judgments_file_name("rrhf-vs-chatgpt", 4) == "judgments_rrhf-vs-chatgpt_batch4.json"
    # The Content-Security-Policy fetches nothing and lets exactly the page's script run.
    assert "default-src 'none'" in page
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    assert script == SCRIPT
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    # Nothing on the page names a system: the replies are "Reply 1" and "Reply 2" only.
    assert re.findall(r"<h2>(.*?)</h2>", page) == ["Prompt", "Reply 1", "Reply 2"]
    # A numpy batch number is written as a plain JSON number.
    assert embedded_tasks(comparison_page("e", np.int64(2), TASKS[:1], "t"))["batch"] == 2


@pytest.mark.parametrize("export, batch, tasks, message", [
    ("a/b", 1, TASKS, "export 'a/b' should be"),
    ("", 1, TASKS, "export '' should be"),
    ("ok", -1, TASKS, "batch -1 should be"),
    ("ok", True, TASKS, "batch True should be"),
    ("ok", 1, [], "at least one task"),
    ("ok", 1, [TASKS[0], dict(TASKS[1], pair_id="p01")], "task 1: pair_id 'p01' appears more than once"),
    ("ok", 1, [{"pair_id": "p", "prompt": "q", "left": "a"}], "task 0: should have exactly the keys"),
    ("ok", 1, [dict(TASKS[0], system="rrhf")], "task 0: should have exactly the keys"),
    ("ok", 1, [dict(TASKS[0], right=None)], "task 0: right should be a string"),
])
def test_bad_arguments_are_refused(export, batch, tasks, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        comparison_page(export, batch, tasks, "title")
