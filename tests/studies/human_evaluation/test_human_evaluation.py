"""The human evaluation's library without Snakemake (rrhf.studies.human_evaluation.pairs,
rrhf.studies.human_evaluation.human_tables): pairs
drawn and blinded, batches dealt, unblinding, and Table 3's and Table 4's arithmetic against hand-computed values.
Judgment files, good and bad, and the simulated annotators are in test_human_evaluation_judgments.py."""

import html
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rrhf.io import write_parquet
from rrhf.studies.human_evaluation.comparison_page import embedded_tasks
from rrhf.studies.human_evaluation.human_tables import (
    TABLE3_COLUMNS,
    agreement,
    comparison_row,
    net_win,
    outcome_shares,
    table3_frame,
    table4_frame,
    table4_page,
    wilson_interval,
)
from rrhf.studies.human_evaluation.judgments import unblind
from rrhf.studies.human_evaluation.pairs import (
    KEY_COLUMNS,
    SHEET_COLUMNS,
    batch_sheet,
    batch_tasks,
    build_pairs,
    comparison_frame,
    export_human_evaluation,
    export_id,
    shown_replies,
)

SEED, PAIRS, SHARED, ANNOTATORS = 0, 4, 2, 2
Z = 1.959963984540054  # the standard normal's 97.5 % quantile


def generations(tag: str, count: int = 12, start: int = 0, gold: bool = True) -> pd.DataFrame:
    """System ``tag``'s replies to test prompts p{start}.. p{start + count - 1}, with a reward and (``gold``) a gold
    reward drawn from the tag."""
    ids = range(start, start + count)
    rng = np.random.default_rng(sum(map(ord, tag)))
    frame = pd.DataFrame({"prompt_id": [f"p{i:02d}" for i in ids],
                          "prompt": [f"\n\nHuman: Question {i}?\n\nAssistant:" for i in ids],
                          "response": [f"{tag} answers {i} <b>&amp;</b>." for i in ids],
                          "reward": rng.normal(size=count), "gold_reward": rng.random(count)})
    return frame if gold else frame.drop(columns="gold_reward")


def comparisons(gold: bool = True, c_start: int = 4) -> list[dict]:
    """Two comparisons: A against B (12 prompts in common), A against C (C answers p{c_start}..: 8 in common)."""
    return [{"number": 1, "a": "A", "b": "B", "a_generations": generations("A", gold=gold),
             "b_generations": generations("B", gold=gold)},
            {"number": 2, "a": "A", "b": "C", "a_generations": generations("A", gold=gold),
             "b_generations": generations("C", start=c_start, gold=gold)}]


def key_of(seed=SEED, pairs=PAIRS, shared=SHARED, annotators=ANNOTATORS, **kwargs) -> pd.DataFrame:
    return build_pairs(comparisons(**kwargs), pairs, shared, annotators, seed)


def judged_frame(outcomes, shared=(), comparison=1, a="A", b="B") -> pd.DataFrame:
    """Unblinded judgments: counted pairs c0, c1, .. with ``outcomes`` (one annotator, x), then ``shared``
    (annotator, pair_id, outcome) triples."""
    rows = [("x", f"c{i}", False, outcome) for i, outcome in enumerate(outcomes)]
    rows += [(annotator, pair, True, outcome) for annotator, pair, outcome in shared]
    frame = pd.DataFrame(rows, columns=["annotator", "pair_id", "shared", "outcome"])
    return frame.assign(comparison=comparison, a=a, b=b)


def wilson(count: int, total: int) -> tuple[float, float]:
    """Wilson's score interval in percent, by its closed form."""
    p = count / total
    centre = (p + Z ** 2 / (2 * total)) / (1 + Z ** 2 / total)
    half = Z / (1 + Z ** 2 / total) * math.sqrt(p * (1 - p) / total + Z ** 2 / (4 * total ** 2))
    return 100 * (centre - half), 100 * (centre + half)


# --- sampling and blinding ------------------------------------------------------------------------------------

def test_the_same_seed_draws_the_same_export_and_another_seed_another():
    key = key_of()
    assert list(key.columns) == KEY_COLUMNS
    pd.testing.assert_frame_equal(key, key_of())
    assert [batch_tasks(key, b, SEED) for b in (1, 2)] == [batch_tasks(key_of(), b, SEED) for b in (1, 2)]
    other = key_of(seed=1)
    drawn = key[["comparison", "prompt_id", "left"]].values.tolist()
    assert other[["comparison", "prompt_id", "left"]].values.tolist() != drawn
    assert other["export"].iloc[0] != key["export"].iloc[0]
    assert key["export"].nunique() == 1 and len(key["export"].iloc[0]) == 12
    # The batch order is the seed's too: the same key, another seed, another order.
    orders = {tuple(task["pair_id"] for task in batch_tasks(key, 1, seed)) for seed in range(4)}
    assert len(orders) > 1


def test_every_comparison_has_its_pairs_on_distinct_common_prompts():
    key = key_of()
    assert list(key["pair_id"]) == [f"pair-{i:04d}" for i in range(1, 2 * (PAIRS + SHARED) + 1)]
    sides = {1: (generations("A"), generations("B")), 2: (generations("A"), generations("C", start=4))}
    for number, (a_side, b_side) in sides.items():
        mine = key[key["comparison"] == number]
        assert len(mine) == PAIRS + SHARED and mine["prompt_id"].is_unique
        assert int(mine["shared"].sum()) == SHARED and set(mine.loc[mine["shared"], "batch"]) == {0}
        assert set(mine["prompt_id"]) <= set(a_side["prompt_id"]) & set(b_side["prompt_id"])
        a_reply, b_reply = a_side.set_index("prompt_id")["response"], b_side.set_index("prompt_id")["response"]
        assert list(mine["a_response"]) == list(a_reply[mine["prompt_id"]])
        assert list(mine["b_response"]) == list(b_reply[mine["prompt_id"]])
        a_gold = a_side.set_index("prompt_id")["gold_reward"]
        assert list(mine["a_gold_reward"]) == list(a_gold[mine["prompt_id"]])
    assert set(key.loc[key["comparison"] == 2, "prompt_id"]) <= {f"p{i:02d}" for i in range(4, 12)}


@pytest.mark.parametrize("pairs, annotators", [(4, 2), (5, 2), (6, 3), (1, 1)])
def test_shared_pairs_go_to_every_batch_and_counted_ones_to_one_each_evenly(pairs, annotators):
    key = key_of(pairs=pairs, annotators=annotators)
    batches = {b: [task["pair_id"] for task in batch_tasks(key, b, SEED)] for b in range(1, annotators + 1)}
    shared = set(key.loc[key["shared"], "pair_id"])
    assert len(shared) == 2 * SHARED
    for batch, ids in batches.items():
        assert shared <= set(ids) and len(ids) == len(set(ids))
        assert set(ids) - shared == set(key.loc[key["batch"] == batch, "pair_id"])
    counted = [pair for ids in batches.values() for pair in ids if pair not in shared]
    assert sorted(counted) == sorted(key.loc[~key["shared"], "pair_id"])  # each in exactly one batch
    for number in (1, 2):
        dealt = key[(key["comparison"] == number) & ~key["shared"]]["batch"].value_counts()
        dealt = dealt.reindex(range(1, annotators + 1), fill_value=0)
        assert dealt.sum() == pairs and dealt.max() - dealt.min() <= 1
    overall = key.loc[~key["shared"], "batch"].value_counts()
    assert overall.max() - overall.min() <= 1  # no batch gets every comparison's remainder
    sheet = batch_sheet(batch_tasks(key, 1, SEED), key["export"].iloc[0], 1)
    assert list(sheet.columns) == SHEET_COLUMNS and list(sheet["pair_id"]) == batches[1]
    assert set(sheet["export"]) == {key["export"].iloc[0]} and set(sheet["judgment"]) == {""}


def test_unblinding_gives_back_a_and_b():
    key = key_of()
    assert set(key["left"]) == {"a", "b"}  # both sides are shown first somewhere
    shown = {task["pair_id"]: task for b in (1, 2) for task in batch_tasks(key, b, SEED)}
    for row in key.itertuples():
        task = shown[row.pair_id]
        # The page shows the texts without their surrounding blank lines and spaces.
        assert (task["left"], task["right"]) == tuple(reply.strip() for reply in shown_replies(row))
        assert task["prompt"] == row.prompt.strip() != row.prompt
        a_shown = "left" if row.left == "a" else "right"
        assert task[a_shown] == row.a_response.strip()
        assert task["right" if a_shown == "left" else "left"] == row.b_response.strip()
    for judgment, if_a_left, if_b_left in (("left", "win", "lose"), ("right", "lose", "win"), ("tie", "tie", "tie")):
        judged = pd.DataFrame({"file": "f", "line": 1, "annotator": "x", "batch": 1, "pair_id": key["pair_id"],
                               "judgment": judgment})
        outcome = unblind(judged, key).set_index("pair_id")["outcome"]
        expected = np.where(key["left"] == "a", if_a_left, if_b_left)
        assert list(outcome[key["pair_id"]]) == list(expected)
    b_left = key.loc[key["left"] == "b", "pair_id"].iloc[0]
    one = pd.DataFrame([{"file": "f", "line": 1, "annotator": "x", "batch": 1, "pair_id": b_left, "judgment": "left"}])
    assert unblind(one, key)["outcome"].tolist() == ["lose"]


def test_pair_ids_and_pages_say_nothing_of_the_comparison():
    key = key_of()
    by_id = key.sort_values("pair_id")["comparison"].tolist()
    assert by_id != sorted(by_id)  # numbered over all comparisons in a shuffled order
    for task in batch_tasks(key, 1, SEED):
        assert set(task) == {"pair_id", "prompt", "left", "right"}


def test_too_few_common_prompts_names_the_row_and_the_key():
    with pytest.raises(ValueError, match=r"table3 row 2 \(A against C\): human_evaluation\.pairs \+ shared_pairs "
                                         r"asks for 9 pairs, but the two sides answered 8"):
        key_of(pairs=7)
    with pytest.raises(ValueError, match=r"table3 row 2 \(A against C\): the two sides answered no test prompt"):
        key_of(c_start=12)
    assert len(key_of(pairs=6)) == 16  # 8 pairs in common: just enough


def test_export_id_changes_with_any_reply_text():
    key = key_of()
    assert export_id(key) == key["export"].iloc[0]
    ids = {export_id(key)}
    for index in range(len(key)):
        for column in ("a_response", "b_response", "prompt"):
            changed = key.copy()
            changed.loc[index, column] += " "
            ids.add(export_id(changed))
    assert len(ids) == 1 + 3 * len(key)
    unseen = key.assign(a_gold_reward=0.0, a_reward=0.0)  # what the pages do not show leaves it alone
    assert export_id(unseen) == export_id(key)


def test_comparison_frame_keeps_common_prompts_in_order():
    frame = comparison_frame(generations("A", 6).iloc[::-1], generations("C", 6, start=3, gold=False), "here")
    assert frame["prompt_id"].tolist() == ["p03", "p04", "p05"]
    assert frame["b_response"].tolist() == [f"C answers {i} <b>&amp;</b>." for i in (3, 4, 5)]
    assert frame["b_gold_reward"].isna().all() and frame["a_gold_reward"].notna().all()


def test_export_writes_the_key_the_pages_and_the_sheets(tmp_path):
    entries = []
    for entry in comparisons():
        files = {}
        for side in ("a", "b"):
            files[f"{side}_generations"] = str(tmp_path / f"{entry['number']}_{side}.parquet")
            write_parquet(entry[f"{side}_generations"], files[f"{side}_generations"], {})
        entries.append({**entry, **files})
    study = {"pairs": PAIRS, "shared_pairs": SHARED, "annotators": ANNOTATORS, "seed": SEED}
    pages, sheets = [str(tmp_path / f"batch_{k}.html") for k in (1, 2)], [str(tmp_path / f"batch_{k}.csv")
                                                                         for k in (1, 2)]
    export_human_evaluation(entries, study, str(tmp_path / "pairs.parquet"), pages, sheets)
    key = pd.read_parquet(tmp_path / "pairs.parquet")
    pd.testing.assert_frame_equal(key, key_of(), check_dtype=False)
    for batch, (page, sheet) in enumerate(zip(pages, sheets), start=1):
        text = open(page, encoding="utf-8").read()
        assert embedded_tasks(text) == {"export": key["export"].iloc[0], "batch": batch,
                                        "tasks": batch_tasks(key, batch, SEED)}
        assert f"Batch {batch} of 2 (8 pairs)" in text
        written = pd.read_csv(sheet, dtype=str, keep_default_na=False)
        expected = batch_sheet(batch_tasks(key, batch, SEED), key["export"].iloc[0], batch).astype(str)
        pd.testing.assert_frame_equal(written, expected)


# --- Table 3's arithmetic -------------------------------------------------------------------------------------

def test_outcome_shares_by_hand():
    assert outcome_shares(pd.Series(["win", "win", "tie", "lose"])) == {"win": 50.0, "tie": 25.0, "lose": 25.0}
    assert outcome_shares(pd.Series(["lose"] * 3)) == {"win": 0.0, "tie": 0.0, "lose": 100.0}
    assert all(math.isnan(v) for v in outcome_shares(pd.Series([], dtype=str)).values())


@pytest.mark.parametrize("count, total", [(3, 10), (0, 5), (7, 7), (59, 100), (1, 2)])
def test_wilson_interval_is_the_closed_form(count, total):
    assert wilson_interval(count, total) == pytest.approx(wilson(count, total), abs=1e-9)


def test_wilson_interval_of_nothing_is_nan():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_agreement_by_hand():
    shared = pd.DataFrame([("x", "s1", "win"), ("x", "s2", "tie"), ("x", "s3", "win"), ("x", "s4", "lose"),
                           ("y", "s1", "win"), ("y", "s2", "win"), ("y", "s3", "lose"), ("y", "s4", "lose"),
                           ("z", "s1", "tie"), ("z", "s2", "tie"), ("z", "s3", "win")],
                          columns=["annotator", "pair_id", "outcome"])
    # x-y: same on s1, s4 (2/4); opposite on s3 (win / lose) -> 3/4 not contradicting.
    # x-z (s1-s3): same on s2, s3 (2/3); win against tie is no contradiction -> 3/3.
    # y-z (s1-s3): same on none; opposite on s3 -> 2/3.
    result = agreement(shared)
    assert result["identical"] == pytest.approx((50 + 200 / 3 + 0) / 3)
    assert result["non_contradicting"] == pytest.approx((75 + 100 + 200 / 3) / 3)
    alone = agreement(shared[shared["annotator"] == "x"])
    assert math.isnan(alone["identical"]) and math.isnan(alone["non_contradicting"])


def test_comparison_row_of_one_replicate_uses_wilson():
    shared = [("x", "s1", "win"), ("y", "s1", "tie"), ("x", "s2", "lose"), ("y", "s2", "lose")]
    frame = judged_frame(["win", "win", "win", "tie", "lose"], shared)
    frame.loc[len(frame)] = {"annotator": "y", "pair_id": "c9", "shared": False, "outcome": "tie",
                             "comparison": 1, "a": "A", "b": "B"}
    row = comparison_row([frame])
    assert (row["win"], row["tie"], row["lose"]) == pytest.approx((50.0, 100 / 3, 100 / 6))
    for outcome, count in (("win", 3), ("tie", 2), ("lose", 1)):
        assert (row[f"{outcome}_low"], row[f"{outcome}_high"]) == pytest.approx(wilson(count, 6))
    assert (row["pairs"], row["judgments"], row["annotators"], row["shared_pairs"]) == (6, 6, 2, 2)
    assert (row["identical"], row["non_contradicting"]) == (50.0, 100.0)
    assert (row["replicates"], row["interval"]) == (1, "Wilson over judgments")


def test_comparison_row_of_three_replicates_uses_the_t_interval():
    replicates = [judged_frame(["win", "win", "win", "tie", "lose"]),  # 60 / 20 / 20
                  judged_frame(["win", "win", "tie", "tie", "lose"]),  # 40 / 40 / 20
                  judged_frame(["win", "win", "tie", "lose"])]  # 50 / 25 / 25
    row = comparison_row(replicates)
    t = stats.t.ppf(0.975, 2)
    for outcome, shares in (("win", [60, 40, 50]), ("tie", [20, 40, 25]), ("lose", [20, 20, 25])):
        mean, sd = sum(shares) / 3, math.sqrt(sum((s - sum(shares) / 3) ** 2 for s in shares) / 2)
        assert row[outcome] == pytest.approx(mean)
        assert (row[f"{outcome}_low"], row[f"{outcome}_high"]) == pytest.approx(
            (mean - t * sd / math.sqrt(3), mean + t * sd / math.sqrt(3)))
    assert row["win_high"] - row["win"] == pytest.approx(4.302653 * 10 / math.sqrt(3), abs=1e-5)
    assert row["pairs"] == pytest.approx(14 / 3) and row["judgments"] == pytest.approx(14 / 3)
    assert (row["replicates"], row["interval"]) == (3, "t over replicates")


def test_net_win_in_both_orders():
    frame = judged_frame(["win", "win", "tie", "lose"], [("x", "s1", "lose"), ("y", "s1", "lose")])
    assert net_win(frame, "A", "B") == pytest.approx(0.25)  # (2 - 1) / 4: the shared pair is not counted
    assert net_win(frame, "B", "A") == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="no judgment compares A with C"):
        net_win(frame, "A", "C")


def test_table3_frame_rows_and_a_comparison_without_counted_judgments():
    first = judged_frame(["win", "tie"])
    second = judged_frame(["lose"], comparison=2, b="C")
    table = table3_frame([pd.concat([first, second])], [{"a": "A", "b": "B"}, {"a": "A", "b": "C"}])
    assert list(table.columns) == TABLE3_COLUMNS
    assert table[["a", "b", "win", "tie", "lose"]].values.tolist() == [["A", "B", 50.0, 50.0, 0.0],
                                                                       ["A", "C", 0.0, 0.0, 100.0]]
    only_shared = judged_frame([], [("x", "s1", "win")], comparison=2, b="C")
    with pytest.raises(ValueError, match=r"table3 row 2 \(A against C\): replicate 1 has no judgment of its counted"):
        table3_frame([pd.concat([first, second]), pd.concat([first, only_shared])],
                     [{"a": "A", "b": "B"}, {"a": "A", "b": "C"}])


# --- Table 4 --------------------------------------------------------------------------------------------------

def table4_rows(gold: bool = True) -> list[dict]:
    return [{"policy": "dataset", "setting": "good responses", "generations": generations("A", gold=gold)},
            {"policy": "tiny", "setting": "DP", "generations": generations("B", 10, start=2, gold=gold)},
            {"policy": "tiny", "setting": "PPO", "generations": generations("C", 8, start=4, gold=gold)}]


def test_table4_draws_prompts_every_row_answered_with_every_rows_reply():
    rows = table4_rows()
    table = table4_frame(rows, 3, SEED)
    assert len(table) == 9 and table["prompt_id"].nunique() == 3
    assert set(table["prompt_id"]) <= {f"p{i:02d}" for i in range(4, 12)}  # answered by all three rows
    for prompt_id, replies in table.groupby("prompt_id"):
        assert replies[["policy", "setting"]].values.tolist() == [["dataset", "good responses"], ["tiny", "DP"],
                                                                  ["tiny", "PPO"]]
        for row, reply in zip(rows, replies.itertuples()):
            source = row["generations"].set_index("prompt_id").loc[prompt_id]
            assert (reply.response, reply.reward, reply.gold_reward) == (source["response"], source["reward"],
                                                                         source["gold_reward"])
    pd.testing.assert_frame_equal(table, table4_frame(table4_rows(), 3, SEED))
    assert len({tuple(table4_frame(rows, 3, seed)["prompt_id"].unique()) for seed in range(6)}) > 1
    assert table4_frame(table4_rows(gold=False), 2, SEED)["gold_reward"].isna().all()
    with pytest.raises(ValueError, match=r"human_evaluation\.table4_prompts: 9 prompts asked, 8 answered by every"):
        table4_frame(rows, 9, SEED)


def test_table4_page_shows_every_reply_escaped(tmp_path):
    table = table4_frame(table4_rows(), 2, SEED)
    table.loc[0, "response"] = "Line one\n<script>alert(1)</script> & more"
    table.to_csv(tmp_path / "table4.csv", index=False)
    table4_page(str(tmp_path / "table4.csv"), "Table 4 <cases>", str(tmp_path / "table4.html"))
    text = (tmp_path / "table4.html").read_text(encoding="utf-8")
    for reply in table["response"]:
        assert html.escape(reply) in text
    assert "<script>alert(1)" not in text and "<b>&amp;</b>" not in text
    assert "<title>Table 4 &lt;cases&gt;</title>" in text
    assert text.count("<h2>Prompt ") == 2
