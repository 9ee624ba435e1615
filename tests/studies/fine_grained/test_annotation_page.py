"""The fine-grained feedback annotation page (rrhf.studies.fine_grained.annotation_page) in a real headless Chromium,
driven
with real mouse and keyboard events over the DevTools protocol (browser_driver): spans marked by dragging the
mouse, saved through the browser's own download, read back with read_qa_feedback; a saved file loaded again;
hostile record text shown as text. The last test needs no browser."""

import base64
import hashlib
import json
import re
from dataclasses import replace

import pytest
from browser_driver import Browser

from rrhf.data.qa_feedback import FeedbackRecord, MissingInfo, SpanError, read_qa_feedback, write_qa_feedback
from rrhf.studies.fine_grained.annotation_page import SCRIPT, annotation_page, embedded_records

BREAD = FeedbackRecord(
    question="How do I bake bread?",
    predictions=["Preheat the oven, then mix the flour. Mix the flour again and again.",
                 "Mix flour, water and yeast, knead, then bake.", "Buy bread.", "Bake it at 220 C."],
    passages=[["Bread", "Preheat the oven to 220 C.", "Mix flour, water and yeast.", "Knead for ten minutes."]],
    gold="Mix flour, water and yeast, knead, and bake at 220 C.",
    preference=[2, 1, 1, 1, 1, 2])
# A character outside the BMP before the span: one character to Python, two UTF-16 units to the browser.
MOON = FeedbackRecord(
    question="Where is 🍞 made?",
    predictions=["Bread 🍞 is baked dough. It is made on the moon.", "In bakeries.", "In ovens.", "Nowhere."])
HOSTILE = "Sure.</script><script>alert(1)</script><script>window.injected = 'script'</script> <!-- Done."


def units(text: str, index: int) -> int:
    """Python's character offset ``index`` into ``text`` as the browser's (UTF-16 units)."""
    return len(text[:index].encode("utf-16-le")) // 2


def write_page(folder, records, title="Annotate"):
    path = folder / "annotate.html"
    path.write_text(annotation_page(records, title), encoding="utf-8")
    return path.as_uri()


def text_of(browser: Browser, selector: str) -> str:
    return browser.evaluate(f"document.querySelector({json.dumps(selector)}).textContent")


def fill(browser: Browser, selector: str, text: str) -> None:
    """Click into a text field and type ``text``."""
    browser.click(selector)
    browser.type_text(text)


def save(browser: Browser, folder) -> str:
    """Click Save; the downloaded file's text (checked to be named qa_feedback.json)."""
    browser.allow_downloads(folder)
    browser.click("#save")
    download = browser.wait_download()
    assert download.suggested_filename == "qa_feedback.json"
    return download.path.read_text(encoding="utf-8")


@pytest.fixture
def page(browser):
    """The browser on a fresh page; the test fails if the page threw."""
    browser.new_page()
    yield browser
    assert browser.exceptions() == []


def test_marking_spans_with_the_mouse_and_saving(page, tmp_path):
    page.navigate(write_page(tmp_path, [BREAD, MOON]))
    assert text_of(page, "#counter") == "record 1 of 2"
    assert page.evaluate("document.getElementById('previous').disabled") is True
    assert text_of(page, "#prediction") == BREAD.predictions[0]

    # Nothing selected, then a selection in the question: a message, no span.
    page.click("#mark-span")
    assert text_of(page, "#status").startswith("Nothing is selected")
    assert page.select_text("#question", 0, 6) == "How do"
    page.click("#mark-span")
    assert "not within prediction 1" in text_of(page, "#status")
    assert page.evaluate("document.querySelectorAll('#errors li').length") == 0

    # Drag over " Mix the flour again and again." (its leading space too, which the page trims).
    first = BREAD.predictions[0]
    start = first.index(" Mix the flour again")
    assert page.select_text("#prediction", start, len(first)) == " Mix the flour again and again."
    page.select_option("#error-type", "Redundant")
    page.click("#mark-span")
    start, end = start + 1, len(first)
    assert text_of(page, "#status") == f"Marked Redundant span {start}:{end}."
    assert page.evaluate("[...document.querySelectorAll('#prediction mark')].map(m => [m.textContent, m.title])") \
        == [["Mix the flour again and again.", "#1 Redundant"]]
    assert text_of(page, "#prediction") == first  # the highlight leaves the text as it was
    fill(page, "#errors li:nth-child(1) input.explanation", "Mix the flour.")
    # A second span, deleted again with its Delete button.
    assert page.select_text("#prediction", 0, 7) == "Preheat"
    page.select_option("#error-type", "Irrelevant")
    page.click("#mark-span")
    assert page.evaluate("document.querySelectorAll('#prediction mark').length") == 2
    page.click("#errors li:nth-child(2) button.delete")
    assert page.evaluate("[...document.querySelectorAll('#errors q')].map(q => q.textContent)") \
        == ["Mix the flour again and again."]

    # Missing information: a bad sentence list is refused, a good one added.
    page.select_option("#missing-type", "Missing-Major-Auxiliary")
    fill(page, "#passage-id", "1")
    fill(page, "#sentence-ids", "3, x")
    page.click("#add-missing")
    assert text_of(page, "#status").startswith("Sentence ids should be integers")
    page.click("#sentence-ids")
    page.press("a", modifiers=("Control",))  # select the field's text, type over it
    page.type_text("3, 2")
    page.click("#add-missing")
    assert text_of(page, "#missing li").startswith("Missing-Major-Auxiliary: passage_id 1, sentences 3, 2")

    page.click("#next")
    assert text_of(page, "#counter") == "record 2 of 2"
    assert text_of(page, "#question") == MOON.question
    second = MOON.predictions[0]
    moon = second.index("made on the moon")
    assert page.select_text("#prediction", units(second, moon), units(second, moon + 16)) == "made on the moon"
    page.select_option("#error-type", "Unverifiable")
    page.click("#mark-span")
    assert text_of(page, "#status") == f"Marked Unverifiable span {moon}:{moon + 16}."
    page.click("#preference-5-1")  # 3 vs 4: 3 is better

    page.click("#previous")  # record 1 kept its span and explanation
    assert page.evaluate("document.querySelector('#errors input.explanation').value") == "Mix the flour."

    text = save(page, tmp_path)
    expected = [replace(BREAD, errors=[SpanError("Redundant", start, end, "Mix the flour.")],
                        missing=[MissingInfo("Missing-Major-Auxiliary", 1, (3, 2))]),
                replace(MOON, errors=[SpanError("Unverifiable", moon, moon + 16)], preference=[0, 0, 0, 0, 0, 1])]
    saved = tmp_path / "qa_feedback.json"
    saved.write_text(text, encoding="utf-8")
    records = read_qa_feedback(saved)
    assert records == expected
    assert records[0].predictions[0][start:end] == "Mix the flour again and again."
    assert records[1].predictions[0][moon:moon + 16] == "made on the moon"
    # Byte for byte what the project's writer writes (but for not escaping non-ASCII): same keys, same order.
    assert text == json.dumps([record.as_json() for record in expected], indent=2, ensure_ascii=False) + "\n"


def test_loading_a_saved_file_and_saving_it_again(page, tmp_path):
    existing = [
        replace(BREAD, errors=[SpanError("Irrelevant", 0, 16, "not asked"), SpanError("Wrong-Grounding", 8, 36),
                               SpanError("Redundant", 38, 68, "Mix the flour.")],
                missing=[MissingInfo("Missing-Answer", 1, (2, 3)), MissingInfo("Missing-Minor-Auxiliary", 1, (1,))],
                corrected="Mix flour, water and yeast, knead, and bake at 220 C."),
        replace(MOON, errors=[SpanError("Incoherent", 8, 23), SpanError("Unverifiable", 30, 46, "no source")],
                preference=[0, 1, 2, 0, 1, 2]),
    ]
    path = tmp_path / "existing.json"
    write_qa_feedback(existing, path)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([replace(MOON, errors=[SpanError("Redundant", 5, 500)]).as_json()]))

    page.navigate(write_page(tmp_path, [replace(BREAD, question="Something else?")]))
    assert text_of(page, "#counter") == "record 1 of 1"
    page.set_file_input("#load", bad)
    page.wait_for("document.getElementById('status').textContent.startsWith('Could not load')")
    assert "feedback.errors[0]: span 5:500 is not within prediction 1" in text_of(page, "#status")
    assert text_of(page, "#question") == "Something else?"  # the page's records are kept

    page.set_file_input("#load", path)
    page.wait_for("document.getElementById('status').textContent.startsWith('Loaded')")
    assert text_of(page, "#status") == "Loaded 2 records from existing.json."
    assert text_of(page, "#counter") == "record 1 of 2"
    # The existing annotations are shown: listed with their text, highlighted over the unchanged prediction.
    first = BREAD.predictions[0]
    assert page.evaluate("[...document.querySelectorAll('#errors q')].map(q => q.textContent)") \
        == [first[0:16], first[8:36], first[38:68]]
    assert page.evaluate("[...document.querySelectorAll('#prediction mark')].map(m => m.textContent).join('')") \
        == first[0:36] + first[38:68]
    assert text_of(page, "#prediction") == first
    assert page.evaluate("document.querySelectorAll('#missing li').length") == 2
    assert page.evaluate("document.getElementById('preference-0-2').checked") is True  # BREAD's 1 vs 2 is 2
    page.click("#next")
    assert page.evaluate("[...document.querySelectorAll('#errors q')].map(q => q.textContent)") \
        == ["is baked dough.", "made on the moon"]

    saved = tmp_path / "saved.json"
    saved.write_text(save(page, tmp_path), encoding="utf-8")
    assert read_qa_feedback(saved) == existing
    assert json.loads(saved.read_text()) == json.loads(path.read_text())


def test_record_text_is_shown_as_text_and_never_run(page, tmp_path):
    hostile = FeedbackRecord(
        question="<img src=x onerror=\"window.injected = 'img'\">Which?",
        predictions=[HOSTILE, "</script>", "<b>bold</b>", "&lt;"],
        passages=[["<script>window.injected = 'title'</script>", "<i>sentence</i>"]])
    page.navigate(write_page(tmp_path, [hostile], title="</title><script>window.injected = 'page'</script>"))
    assert page.evaluate("typeof window.injected") == "undefined"
    assert not [event for event in page.events if event["method"] == "Page.javascriptDialogOpening"]
    assert text_of(page, "#counter") == "record 1 of 1"  # the page's own script did run
    assert text_of(page, "#prediction") == HOSTILE
    assert text_of(page, "#question") == hostile.question
    assert HOSTILE in page.evaluate("document.body.innerText")
    assert page.evaluate("document.querySelectorAll('img, i, #record b').length") == 0
    assert page.evaluate("document.scripts.length") == 3
    assert page.evaluate("document.title") == "</title><script>window.injected = 'page'</script>"


def test_page_embeds_its_records_and_is_offline():
    hostile = replace(MOON, predictions=[HOSTILE, "a", "b", "c"], errors=[SpanError("Incoherent", 5, 14)])
    records = [BREAD, hostile]
    page = annotation_page(records, "A & B")
    assert embedded_records(page) == [record.as_json() for record in records]
    assert page.count("</script>") == 3  # the reply's "</script>" is escaped: only the page's own three
    assert page.count("<!--") == 0
    assert re.search(r"https?:", page, re.IGNORECASE) is None
    assert not re.search(r"\b(src|href)=", page)
    assert "<title>A &amp; B</title>" in page
    # The Content-Security-Policy lets exactly the page's script run.
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    assert script == SCRIPT
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
