"""Judgment files of the human evaluation (rrhf.studies.human_evaluation.judgments): each kind of bad file named with
its
file and line, nothing written when a file is bad, a filled spreadsheet read as the page's JSON, and the simulated
annotators, read back like people, through to Table 3 (rrhf.studies.human_evaluation.human_tables.write_table3)."""

import json

import pandas as pd
import pytest
from test_human_evaluation import ANNOTATORS, PAIRS, SEED, SHARED, key_of

from rrhf.studies.human_evaluation.human_tables import write_table3
from rrhf.studies.human_evaluation.judgments import (
    JUDGED_COLUMNS,
    csv_entries,
    import_judgments,
    json_entries,
    read_judgments,
    simulate_annotators,
    simulated_judgments,
)
from rrhf.studies.human_evaluation.pairs import batch_sheet, batch_tasks

EXACT = {"noise": 0.0, "noise_spread": 0.0, "tie_margin": 0.0, "annotator_bias": {}}
NOISY = {"noise": 0.5, "noise_spread": 0.5, "tie_margin": 0.1, "annotator_bias": {}}
BOTH = [{"a": "A", "b": "B"}, {"a": "A", "b": "C"}]


@pytest.fixture(scope="module")
def key() -> pd.DataFrame:
    return key_of()


def ids(key, shared: bool = False, batch: int | None = None) -> list[str]:
    """The key's shared pair ids, or those dealt to ``batch``."""
    return list(key.loc[key["shared"] if shared else key["batch"] == batch, "pair_id"])


def judgment_file(path, export, batch, annotator, judgments) -> str:
    """A judgment file as the page saves it (indented by two spaces): judgments[k]'s pair id is on line 7 + 4k."""
    content = {"export": export, "batch": batch, "annotator": annotator,
               "judgments": [{"pair_id": pair, "judgment": judgment} for pair, judgment in judgments]}
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
    return str(path)


def line(k: int) -> int:
    return 7 + 4 * k


# --- bad files, each named ------------------------------------------------------------------------------------

BAD = {  # case -> (export (None: the key's), batch, judgments as (pair, judgment) with "shared", "mine", "theirs"
    #                  meaning the key's first shared pair, batch 1's and batch 2's; the bad entry; its message)
    "unknown pair": (None, 1, [("shared", "left"), ("pair-9999", "tie")], 1,
                     "unknown pair id 'pair-9999' (not in this export)"),
    "judged twice": (None, 1, [("shared", "left"), ("mine", "tie"), ("shared", "right")], 2,
                     "annotator 'ana' judged {shared} twice (first at {path} line 7)"),
    "another export": ("0123456789ab", 1, [("mine", "left")], 0,
                       "export '0123456789ab' is not this export ({export})"),
    "batch not in export": (None, 3, [("shared", "left")], 0, "batch 3 is not one of [1, 2]"),
    "pair of another batch": (None, 1, [("mine", "left"), ("theirs", "left")], 1, "pair {theirs} is not in batch 1"),
    "bad judgment": (None, 2, [("shared", "better")], 0, "judgment 'better' for {shared} is not one of left, tie, "
                                                         "right"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_judgment_is_named_with_its_file_and_line(tmp_path, key, case):
    export, batch, entries, bad, message = BAD[case]
    names = {"shared": ids(key, shared=True)[0], "mine": ids(key, batch=1)[0], "theirs": ids(key, batch=2)[0]}
    path = tmp_path / "ana.json"
    judgment_file(path, export or key["export"].iloc[0], batch, "ana",
                  [(names.get(pair, pair), judgment) for pair, judgment in entries])
    with pytest.raises(ValueError) as error:
        read_judgments([str(path)], key)
    expected = message.format(path=path, export=key["export"].iloc[0], **names)
    assert f"1 problem(s) in the judgment files:\n  {path} line {line(bad)}: {expected}" in str(error.value)


def test_a_pair_judged_in_two_files_by_one_annotator_and_every_problem_listed(tmp_path, key):
    shared, export = ids(key, shared=True), key["export"].iloc[0]
    first = judgment_file(tmp_path / "a.json", export, 1, "ana", [(shared[0], "left"), (shared[1], "tie")])
    second = judgment_file(tmp_path / "b.json", export, 2, " ana ", [(shared[1], "left"), (shared[0], "oops")])
    with pytest.raises(ValueError) as error:
        read_judgments([second, first], key)
    assert str(error.value).splitlines()[1:] == [
        f"  {second} line 7: annotator 'ana' judged {shared[1]} twice (first at {first} line 11)",
        f"  {second} line 11: judgment 'oops' for {shared[0]} is not one of left, tie, right"]
    # Another annotator may judge the same shared pairs; a file without a name is named by the file.
    third = judgment_file(tmp_path / "bob.json", export, 2, "", [(shared[1], "left"), (shared[0], "tie")])
    judged = read_judgments([first, third], key)
    assert list(judged.columns) == JUDGED_COLUMNS
    assert judged[["annotator", "batch", "pair_id", "line"]].values.tolist() == [
        ["ana", 1, shared[0], 7], ["ana", 1, shared[1], 11], ["bob", 2, shared[1], 7], ["bob", 2, shared[0], 11]]


def test_malformed_and_foreign_json_files(tmp_path, key):
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "export": "x",\n  "batch": 1,,\n  "judgments": []\n}\n')
    assert json_entries(broken)[1] == [f"{broken} line 3: not valid JSON (Expecting property name enclosed in "
                                       "double quotes)"]
    listed = tmp_path / "listed.json"
    listed.write_text("[]")
    assert json_entries(listed)[1][0].startswith(f"{listed} line 1: not a judgment file")
    with pytest.raises(ValueError, match=f"{broken} line 3: not valid JSON"):
        read_judgments([str(broken)], key)


def test_a_sheet_without_a_judgment_column_and_a_bad_cell(tmp_path, key):
    sheet = batch_sheet(batch_tasks(key, 1, SEED), key["export"].iloc[0], 1)
    sheet.drop(columns="judgment").to_csv(tmp_path / "batch_1.csv", index=False)
    assert csv_entries(tmp_path / "batch_1.csv")[1] == [
        f"{tmp_path / 'batch_1.csv'} line 1: missing column(s) ['judgment']; a batch spreadsheet has "
        "['export', 'batch', 'pair_id', 'prompt', 'left', 'right', 'judgment', 'annotator']"]
    sheet.loc[0, "judgment"] = "maybe"
    sheet.to_csv(tmp_path / "filled.csv", index=False)
    with pytest.raises(ValueError, match=f"{tmp_path / 'filled.csv'} line 2: judgment 'maybe' for "
                                         f"{sheet['pair_id'][0]} is not one of left, tie, right"):
        read_judgments([str(tmp_path / "filled.csv")], key)


def test_a_failed_import_writes_nothing(tmp_path, key):
    key_path, output = tmp_path / "pairs.parquet", tmp_path / "judged.parquet"
    key.to_parquet(key_path, index=False)
    bad = judgment_file(tmp_path / "ana.json", key["export"].iloc[0], 1, "ana", [("pair-9999", "left")])
    with pytest.raises(ValueError, match="unknown pair id 'pair-9999'"):
        import_judgments(str(key_path), [bad], str(output))
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ana.json", "pairs.parquet"]
    with pytest.raises(ValueError, match="no judgment files: human_evaluation.judgments names a folder with none"):
        import_judgments(str(key_path), [], str(output))
    assert not output.exists()


# --- a filled spreadsheet reads as the page's file ------------------------------------------------------------

def test_a_filled_sheet_reads_the_same_as_the_json(tmp_path, key):
    sheet = batch_sheet(batch_tasks(key, 1, SEED), key["export"].iloc[0], 1)
    filled = ["left", "", "tie", " Right", "", "LEFT", "tie", ""]
    assert len(sheet) == len(filled)
    sheet = sheet.assign(judgment=filled, annotator="ana")
    sheet.to_csv(tmp_path / "batch_1.csv", index=False)
    answered = [(pair, value.strip().lower()) for pair, value in zip(sheet["pair_id"], filled) if value]
    path = judgment_file(tmp_path / "ana.json", key["export"].iloc[0], 1, "ana", answered)
    from_csv, from_json = read_judgments([str(tmp_path / "batch_1.csv")], key), read_judgments([path], key)
    assert len(from_csv) == 5
    text = (tmp_path / "batch_1.csv").read_text()
    # A row's line is where it starts in the file (its pair id, before the prompt's own lines); the header is line 1.
    assert from_csv["line"].tolist() == [text[:text.index(pair)].count("\n") + 1 for pair, _ in answered]
    pd.testing.assert_frame_equal(from_csv.drop(columns=["file", "line"]), from_json.drop(columns=["file", "line"]))
    sheet.assign(annotator="").to_csv(tmp_path / "nameless.csv", index=False)
    assert set(read_judgments([str(tmp_path / "nameless.csv")], key)["annotator"]) == {"nameless"}


# --- simulated annotators -------------------------------------------------------------------------------------

def test_simulated_annotators_are_deterministic_for_a_seed(key):
    document = simulated_judgments(key, 1, NOISY, 7)
    assert document == simulated_judgments(key, 1, NOISY, 7)
    assert document != simulated_judgments(key, 1, NOISY, 8)
    assert (document["export"], document["batch"], document["annotator"]) == (key["export"].iloc[0], 1,
                                                                               "simulated-1")
    assert [j["pair_id"] for j in document["judgments"]] == sorted(ids(key, shared=True) + ids(key, batch=1))


def test_without_noise_they_pick_the_higher_gold_and_with_a_wide_margin_tie(key):
    rows = key.set_index("pair_id")
    verdicts = set()
    for batch in (1, 2):
        for entry in simulated_judgments(key, batch, EXACT, 5)["judgments"]:
            row = rows.loc[entry["pair_id"]]
            left, right = (row["a_gold_reward"], row["b_gold_reward"])[::1 if row["left"] == "a" else -1]
            assert entry["judgment"] == ("left" if left > right else "right")
            verdicts.add(entry["judgment"])
        wide = simulated_judgments(key, batch, {**NOISY, "tie_margin": 100.0}, 5)
        assert {entry["judgment"] for entry in wide["judgments"]} == {"tie"}
    assert verdicts == {"left", "right"}


def test_simulated_annotators_need_a_gold_reward():
    with pytest.raises(ValueError, match="judge by the gold reward, and this dataset has none; set "
                                         "human_evaluation.judgments"):
        simulated_judgments(key_of(gold=False), 1, EXACT, 0)


def test_simulated_files_go_through_import_to_table3(tmp_path, key):
    key_path = tmp_path / "pairs.parquet"
    key.to_parquet(key_path, index=False)
    outputs = [str(tmp_path / "simulated" / f"batch_{k}.json") for k in range(1, ANNOTATORS + 1)]
    simulate_annotators(str(key_path), EXACT, 3, outputs)
    judged = import_judgments(str(key_path), outputs, str(tmp_path / "judged.parquet"))
    assert len(judged) == 2 * (PAIRS + ANNOTATORS * SHARED)  # each counted pair once, each shared one per annotator
    table = write_table3([str(tmp_path / "judged.parquet")], BOTH, str(tmp_path / "table3.csv"))
    written = pd.read_csv(tmp_path / "table3.csv")
    assert written[["a", "b"]].values.tolist() == [["A", "B"], ["A", "C"]]
    for number, row in zip((1, 2), written.itertuples()):
        counted = key[(key["comparison"] == number) & ~key["shared"]]
        better = (counted["a_gold_reward"] > counted["b_gold_reward"]).mean()
        assert (row.win, row.tie, row.lose) == pytest.approx((100 * better, 0.0, 100 * (1 - better)), abs=0.005)
        assert (row.pairs, row.judgments, row.annotators, row.shared_pairs) == (PAIRS, PAIRS, ANNOTATORS, SHARED)
        assert (row.identical, row.non_contradicting, row.replicates) == (100.0, 100.0, 1)
    assert table["win"].tolist() != [0.0, 0.0]


def test_noisy_replicates_make_a_t_interval(tmp_path, key):
    key_path = tmp_path / "pairs.parquet"
    key.to_parquet(key_path, index=False)
    judged = []
    for seed in (1, 2, 3):
        outputs = [str(tmp_path / f"r{seed}" / f"batch_{k}.json") for k in range(1, ANNOTATORS + 1)]
        simulate_annotators(str(key_path), NOISY, seed, outputs)
        judged.append(str(tmp_path / f"r{seed}" / "judged.parquet"))
        import_judgments(str(key_path), outputs, judged[-1])
    table = write_table3(judged, BOTH, str(tmp_path / "table3.csv"))
    assert table["interval"].tolist() == ["t over replicates"] * 2 and table["replicates"].tolist() == [3, 3]
    shares = table[["win", "tie", "lose"]].sum(axis=1)
    assert shares.tolist() == pytest.approx([100.0, 100.0])
    assert ((table["win_low"] <= table["win"]) & (table["win"] <= table["win_high"])).all()


def test_every_batch_gets_counted_pairs_when_pairs_are_fewer_than_annotators(tmp_path):
    # Dealing goes on from one comparison to the next: 2 comparisons of 2 pairs reach all 3 annotators.
    key = key_of(pairs=2, annotators=3)
    assert sorted(key.loc[~key["shared"], "batch"].value_counts().to_dict().items()) == [(1, 2), (2, 1), (3, 1)]
    with pytest.raises(ValueError, match="leave some of the 3 annotators no pair"):
        key_of(pairs=1, annotators=3)
    documents = [simulated_judgments(key, batch, EXACT, 0) for batch in (1, 2, 3)]
    paths = [tmp_path / f"batch_{k}.json" for k in (1, 2, 3)]
    for path, document in zip(paths, documents):
        path.write_text(json.dumps(document))
    assert len(read_judgments([str(p) for p in paths], key)) == sum(len(d["judgments"]) for d in documents)
