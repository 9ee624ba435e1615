"""The paper's Table 3 (human evaluation: win / tie / lose of side A against side B) and Table 4 (each row's reply
to the same test prompts), from the unblinded judgments (:mod:`rrhf.studies.human_evaluation.judgments`) and the rows'
generations.

Table 3 counts the pairs that are not shared: a comparison's ``win`` is the percentage of its judgments that
prefer A, ``tie`` and ``lose`` likewise. With one replicate each share's 95 % interval is Wilson's score
interval over the judgments (how far the annotators' verdict on these replies is known); with several it is the
t-interval of the replicates' shares (training, sampling and annotators all drawn again). Agreement is
Appendix D's, on the shared pairs: for each two annotators the share of the pairs both judged on which they gave
the same verdict (``identical``) and on which they did not prefer opposite sides (``non_contradicting``), averaged
over the annotator pairs.
"""

from __future__ import annotations

import html
import itertools
import logging
from typing import Any

import numpy as np
import pandas as pd

from rrhf.io import atomic_path, read_parquet, setup_logging
from rrhf.statistics import t_interval
from rrhf.studies.human_evaluation.judgments import OUTCOMES

logger = logging.getLogger(__name__)

TABLE3_COLUMNS = ["a", "b", "win", "tie", "lose", "win_low", "win_high", "tie_low", "tie_high", "lose_low",
                  "lose_high", "pairs", "judgments", "annotators", "shared_pairs", "identical", "non_contradicting",
                  "replicates", "interval"]
TABLE4_COLUMNS = ["prompt_id", "prompt", "policy", "setting", "response", "reward", "gold_reward"]


def outcome_shares(outcomes: pd.Series) -> dict[str, float]:
    """Percentage of ``outcomes`` (win / tie / lose) that are each outcome; NaN for none."""
    total = len(outcomes)
    return {outcome: 100.0 * float((outcomes == outcome).sum()) / total if total else float("nan")
            for outcome in OUTCOMES}


def wilson_interval(count: int, total: int) -> tuple[float, float]:
    """Wilson's 95 % score interval of the proportion ``count / total``, in percent (scipy's binomtest)."""
    from scipy.stats import binomtest

    if total == 0:
        return float("nan"), float("nan")
    interval = binomtest(count, total).proportion_ci(0.95, method="wilson")
    return 100.0 * interval.low, 100.0 * interval.high


def agreement(shared: pd.DataFrame) -> dict[str, float]:
    """Appendix D's agreement of the judgments ``shared`` (annotator, pair_id, outcome) on the shared pairs, in
    percent: ``identical`` and ``non_contradicting``, each averaged over the annotator pairs that judged a pair
    in common (NaN when no two did)."""
    verdicts = {name: group.set_index("pair_id")["outcome"] for name, group in shared.groupby("annotator")}
    identical, non_contradicting = [], []
    for first, second in itertools.combinations(sorted(verdicts), 2):
        common = verdicts[first].index.intersection(verdicts[second].index)
        if common.empty:
            continue
        one, other = verdicts[first].loc[common], verdicts[second].loc[common]
        identical.append(100.0 * float((one == other).mean()))
        opposite = ((one == "win") & (other == "lose")) | ((one == "lose") & (other == "win"))
        non_contradicting.append(100.0 * float((~opposite).mean()))
    return {"identical": float(np.mean(identical)) if identical else float("nan"),
            "non_contradicting": float(np.mean(non_contradicting)) if non_contradicting else float("nan")}


def mean_of(values: list[float]) -> float:
    """The mean of the values that are not NaN; NaN when none is (no two annotators shared a pair)."""
    values = [value for value in values if not np.isnan(value)]
    return float(np.mean(values)) if values else float("nan")


def comparison_row(replicates: list[pd.DataFrame]) -> dict[str, Any]:
    """One comparison's Table 3 numbers from its judgments in each replicate (:data:`TABLE3_COLUMNS` less a, b)."""
    counted = [judged[~judged["shared"]] for judged in replicates]
    per_replicate = [outcome_shares(frame["outcome"]) for frame in counted]
    row: dict[str, Any] = {}
    for outcome in OUTCOMES:
        if len(replicates) == 1:
            frame = counted[0]
            row[outcome] = per_replicate[0][outcome]
            row[f"{outcome}_low"], row[f"{outcome}_high"] = wilson_interval(int((frame["outcome"] == outcome).sum()),
                                                                            len(frame))
        else:
            mean, half = t_interval([shares[outcome] for shares in per_replicate])
            row.update({outcome: mean, f"{outcome}_low": mean - half, f"{outcome}_high": mean + half})
    agreements = [agreement(judged[judged["shared"]]) for judged in replicates]
    row.update({
        "pairs": float(np.mean([frame["pair_id"].nunique() for frame in counted])),
        "judgments": float(np.mean([len(frame) for frame in counted])),
        "annotators": float(np.mean([judged["annotator"].nunique() for judged in replicates])),
        "shared_pairs": float(np.mean([judged.loc[judged["shared"], "pair_id"].nunique() for judged in replicates])),
        **{name: mean_of([a[name] for a in agreements]) for name in ("identical", "non_contradicting")},
        "replicates": len(replicates),
        "interval": "Wilson over judgments" if len(replicates) == 1 else "t over replicates"})
    return row


def table3_frame(judged: list[pd.DataFrame], comparisons: list[dict[str, str]]) -> pd.DataFrame:
    """Table 3 (:data:`TABLE3_COLUMNS`): a row per comparison ({a, b}) from each replicate's unblinded judgments;
    raises naming the comparison when a replicate has no counted judgment of it."""
    rows = []
    for number, comparison in enumerate(comparisons, start=1):
        mine = [frame[frame["comparison"] == number] for frame in judged]
        for replicate, frame in enumerate(mine):
            if not (~frame["shared"]).any():
                raise ValueError(f"table3 row {number} ({comparison['a']} against {comparison['b']}): replicate "
                                 f"{replicate} has no judgment of its counted pairs")
        rows.append({"a": comparison["a"], "b": comparison["b"], **comparison_row(mine)})
    return pd.DataFrame(rows, columns=TABLE3_COLUMNS)


def write_table3(judged_paths: list[str], comparisons: list[dict[str, str]], output: str,
                 log_path: str | None = None) -> pd.DataFrame:
    """Write results/table3.csv from each replicate's judged.parquet."""
    setup_logging(log_path)
    judged = [read_parquet(path, ["comparison", "annotator", "pair_id", "shared", "outcome"]) for path in judged_paths]
    table = table3_frame(judged, comparisons)
    written = table.round(2)
    for column in ("pairs", "judgments", "annotators", "shared_pairs"):  # counts: means over replicates
        written[column] = [int(value) if float(value).is_integer() else value for value in written[column]]
    with atomic_path(output) as path:
        written.to_csv(path, index=False)
    logger.info("agreement on all shared pairs (replicate 0): %s", agreement(judged[0][judged[0]["shared"]]))
    return table


def net_win(judged: pd.DataFrame, a: str, b: str) -> float:
    """A's win minus lose share (a fraction in [-1, 1]) over the counted judgments of the comparison of ``a`` and
    ``b``, in either order (B first: B's net win); raises when the judgments have no such comparison."""
    counted = judged[~judged["shared"]]
    for first, second, sign in ((a, b, 1.0), (b, a, -1.0)):
        mine = counted[(counted["a"] == first) & (counted["b"] == second)]
        if len(mine):
            return sign * float((mine["outcome"] == "win").mean() - (mine["outcome"] == "lose").mean())
    raise ValueError(f"no judgment compares {a} with {b}")


def table4_frame(rows: list[dict[str, Any]], count: int, seed: int) -> pd.DataFrame:
    """Table 4 (:data:`TABLE4_COLUMNS`): ``count`` test prompts every row answered (drawn with ``seed``), each
    with every row's reply, reward and gold reward; ``rows`` are {policy, setting, generations (a frame)}."""
    frames = [row["generations"].drop_duplicates("prompt_id").set_index("prompt_id") for row in rows]
    common = sorted(set.intersection(*(set(frame.index) for frame in frames)))
    if len(common) < count:
        raise ValueError(f"human_evaluation.table4_prompts: {count} prompts asked, {len(common)} answered by every "
                         "table4 row")
    chosen = [common[i] for i in sorted(np.random.default_rng([seed, 4]).permutation(len(common))[:count])]
    records = []
    for prompt_id in chosen:
        for row, frame in zip(rows, frames):
            reply = frame.loc[prompt_id]
            records.append({"prompt_id": prompt_id, "prompt": reply["prompt"], "policy": row["policy"],
                            "setting": row["setting"], "response": reply["response"], "reward": reply["reward"],
                            "gold_reward": reply.get("gold_reward", float("nan"))})
    return pd.DataFrame(records, columns=TABLE4_COLUMNS)


def write_table4(rows: list[dict[str, Any]], count: int, seed: int, output: str, log_path: str | None = None
                 ) -> pd.DataFrame:
    """Write results/table4.csv; ``rows`` give each row's generations.parquet as ``path``."""
    setup_logging(log_path)
    loaded = [{**row, "generations": read_parquet(row["path"], ["prompt_id", "prompt", "response", "reward"])}
              for row in rows]
    table = table4_frame(loaded, count, seed)
    with atomic_path(output) as path:
        table.round(4).to_csv(path, index=False)
    return table


def table4_page(table: str, title: str, output: str, log_path: str | None = None) -> None:
    """Table 4 (its CSV) as a page: each prompt, then every row's reply with its reward and gold reward."""
    from rrhf.report.pages import html_table, number, page, write_page

    frame = pd.read_csv(table, dtype={"prompt_id": str})
    body = ['<p class="note">Each row\'s reply to the same test prompts, as the paper\'s Table 4. <b>reward</b>: the '
            "reward model's score; <b>gold reward</b>: the dataset's own judge (empty for data without one).</p>"]
    for order, (prompt_id, replies) in enumerate(frame.groupby("prompt_id", sort=False), start=1):
        body.append(f"<h2>Prompt {order} ({html.escape(str(prompt_id))})</h2>")
        body.append(f"<pre>{html.escape(str(replies['prompt'].iloc[0]).strip())}</pre>")
        body.append(html_table(["policy", "setting", "response", "reward", "gold reward"],
                               [[row.policy, row.setting, row.response, number(row.reward), number(row.gold_reward)]
                                for row in replies.itertuples()]))
    body.append(f'<p class="note">From <code>{html.escape(table)}</code>.</p>')
    write_page(page(title, body), output)
    setup_logging(log_path).info("wrote %s from %s", output, table)
