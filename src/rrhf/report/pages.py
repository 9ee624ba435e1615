"""The report's HTML pages: a results table as a readable table, and a few test generations of every row of a
table side by side. Self-contained (inline style, no script) and deterministic (no dates)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from rrhf.io import atomic_path, read_parquet, setup_logging
from rrhf.statistics import interval_text

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em; color: #1e293b; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.6em; }
p.note { color: #475569; max-width: 60em; }
table { border-collapse: collapse; font-size: 0.9em; margin-top: 0.5em; }
th, td { border: 1px solid #cbd5e1; padding: 0.3em 0.6em; vertical-align: top; }
th { background: #f1f5f9; text-align: left; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.text, pre { white-space: pre-wrap; max-width: 48em; }
pre { background: #f8fafc; border: 1px solid #e2e8f0; padding: 0.6em; font-size: 0.85em; }
"""


def page(title: str, body: list[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
                      f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
                      f"<h1>{html.escape(title)}</h1>", *body, "</body>", "</html>", ""])


def write_page(text: str, output: str) -> None:
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; numbers right-aligned, other cells as wrapped text, empty cells as a dash."""
    lines = ["<table>", "<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>",
             "<tbody>"]
    for row in rows:
        cells = []
        for value in row:
            text = "" if value is None else str(value)
            kind = "number" if text and is_number(text.split(" ± ")[0]) else "text"  # "2.71 ± 0.10" too
            cells.append(f'<td class="{kind}">{html.escape(text) if text else "&ndash;"}</td>')
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def with_intervals(frame: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """A table read as text with each ``{column}_ci95`` (a table over replicates) merged into its column as
    ``mean ± half-width`` at the precision the interval warrants (rrhf.statistics.interval_text); (the frame,
    whether it had any)."""
    intervals = [column for column in frame.columns if column.endswith("_ci95") and column[:-5] in frame.columns]
    if not intervals:
        return frame, False
    frame = frame.copy()
    for column in intervals:
        base = column[:-5]
        frame[base] = [interval_text(float(mean), float(half)) if mean and half else mean
                       for mean, half in zip(frame[base], frame[column], strict=True)]
    return frame.drop(columns=intervals), True


def table_page(table: str, title: str, note: str, output: str, log_path: str | None = None) -> pd.DataFrame:
    """A results table (CSV) as an HTML page: every cell as written in the CSV (an empty cell, such as an online
    row's training-set statistics, as a dash), under ``title`` and a ``note``. A table over replicates shows
    its means with their 95 % intervals (:func:`with_intervals`)."""
    frame, intervals = with_intervals(pd.read_csv(table, dtype=str, keep_default_na=False))
    if intervals:
        note = (f"{note} Over {frame['replicates'].iloc[0]} replicates: each value is the mean over replicates "
                "± the half-width of its 95 % t-interval.")
    body = [f'<p class="note">{html.escape(note)}</p>' if note else "",
            html_table(list(frame.columns), frame.values.tolist()),
            f'<p class="note">From <code>{html.escape(table)}</code>: {len(frame)} rows.</p>']
    write_page(page(title, body), output)
    setup_logging(log_path).info("wrote %s from %s (%d rows)", output, table, len(frame))
    return frame


def example_prompts(frames: list[pd.DataFrame], count: int) -> list[str]:
    """The first ``count`` prompt ids (in the first evaluation's order) that every evaluation answered."""
    common = set.intersection(*(set(frame["prompt_id"]) for frame in frames))
    return [prompt_id for prompt_id in frames[0]["prompt_id"] if prompt_id in common][:count]


def number(value: Any) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.3f}"


def generation_samples(rows: list[dict[str, str]], title: str, count: int, output: str,
                       log_path: str | None = None) -> list[str]:
    """For the first ``count`` test prompts that every row's evaluation answered: the prompt, then each row's
    (``policy``, ``setting``) response with its reward and gold reward, from the row's generations.parquet
    (``path``). Returns the prompt ids shown."""
    if not rows:
        raise ValueError(f"{output}: no evaluated row to show")
    files = [row["path"] for row in rows]
    frames = [read_parquet(path, ["prompt_id", "prompt", "response", "reward"]).drop_duplicates("prompt_id")
              for path in files]
    prompt_ids = example_prompts(frames, count)
    gold = any("gold_reward" in frame.columns for frame in frames)
    header = ["policy", "setting", "response", "reward", *(["gold reward"] if gold else [])]
    indexed = [frame.set_index("prompt_id") for frame in frames]
    body = [f'<p class="note">The first {len(prompt_ids)} test prompts that every row answered, in the '
            "evaluation's order. <b>reward</b>: the reward model's score of the response"
            # (The page names the gold reward's module as it was called when the page was designed; the tables and
            # pages stay byte-identical across the move to rrhf.data.gold_reward.)
            + ("; <b>gold reward</b>: the dataset's own judge of it (the synthetic data's rrhf.data.gold_reward)."
               if gold else ".") + "</p>"]
    for number_, prompt_id in enumerate(prompt_ids, start=1):
        body.append(f"<h2>Prompt {number_} ({html.escape(str(prompt_id))})</h2>")
        body.append(f"<pre>{html.escape(str(indexed[0].loc[prompt_id, 'prompt']).strip())}</pre>")
        table_rows = []
        for row, frame in zip(rows, indexed):
            record = frame.loc[prompt_id]
            table_rows.append([row["policy"], row["setting"], record["response"], number(record["reward"]),
                               *([number(record.get("gold_reward"))] if gold else [])])
        body.append(html_table(header, table_rows))
    body.append('<p class="note">From ' + ", ".join(f"<code>{html.escape(path)}</code>" for path in files) + ".</p>")
    write_page(page(title, body), output)
    setup_logging(log_path).info("wrote %s: prompts %s of %d rows", output, prompt_ids, len(rows))
    return prompt_ids
