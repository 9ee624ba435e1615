"""The human evaluation in the plan: Table 3's comparison rows and Table 4's rows read from the tables file, each
bad row named with the file and row, the checks of the `human_evaluation` block, the findings' net_win claims
on Table 3's comparisons (in either order), and the files of each replicate."""

import pytest
import yaml

from plan_helpers import study_problems, tiny_plan
from rrhf.plan.checks import plan_problems, table_problems
from rrhf.plan.table_rows import read_table_rows
from rrhf.studies.findings.claims import claims_for_rule, comparison_sides, read_claims
from rrhf.studies.human_evaluation.study import side_label


def human(plan):
    """The plan's human evaluation study."""
    return plan.studies["human_evaluation"]

ALPACA = "tiny-instruct (Alpaca role)"
DP, PPO, IP2 = ({"policy": "Alpaca", "setting": s} for s in ("DP", "PPO", "IP-2"))
CHOSEN = {"responses": "chosen"}
CLAIM = {"id": "c", "claim": "a claim", "source": "Table 3", "metric": "net_win", "row": DP, "versus": PPO,
         "direction": "higher"}


def plan_with_tables(tmp_path, tables: dict, edit=None):
    """The tiny plan with its own tables file (and no findings: they name the project's rows)."""
    path = tmp_path / "tables.yaml"
    path.write_text(yaml.safe_dump(tables))

    def change(config):
        config.update(tables=str(path), findings=None)
        if edit:
            edit(config)
    return tiny_plan(change)


def real_data(config):
    config["datasets"]["synthetic_hh"] = {"source": "anthropic_jsonl", "files": {"train": "a", "test": "b"}}


# --- the rows -------------------------------------------------------------------------------------------------

def test_table3_rows_are_comparisons_with_versus():
    plan = tiny_plan()
    rows = plan.tables["table3"]
    assert [(r.number, r.policy, r.setting, r.versus.table, r.versus.number) for r in rows] == [
        (1, "Alpaca", "DP", "table3", 1), (2, "Alpaca", "DP", "table3", 2), (3, "Alpaca", "DP", "table3", 3)]
    assert [(r.versus.policy, r.versus.setting, r.versus.responses) for r in rows] == [
        (None, None, "chosen"), ("Alpaca", "PPO", None), ("Alpaca", "IP-2", None)]
    assert table_problems(plan) == [] and study_problems(plan, "human_evaluation") == []
    assert human(plan).comparisons(1)[2] == {
        "number": 3, "a": f"{ALPACA} DP", "b": f"{ALPACA} IP-2",
        "a_generations": "results/replicate1/eval/instruct/DP/generations.parquet",
        "b_generations": "results/replicate1/eval/instruct/IP-2/generations.parquet"}
    assert human(plan).comparisons()[0]["b"] == "dataset good responses"
    assert human(plan).comparisons()[0]["b_generations"] == "results/eval/dataset/chosen/generations.parquet"


def test_table3_rows_that_are_no_comparison_are_named(tmp_path):
    path = tmp_path / "tables.yaml"
    path.write_text("table3:\n"
                    "  - {policy: Alpaca, setting: DP}\n"  # no versus
                    "  - {policy: Alpaca, setting: DP, versus: {policy: Alpaca, colour: red}}\n"
                    "  - {policy: Alpaca, setting: DP, versus: {responses: best}}\n"
                    "  - {policy: Alpaca, setting: DP, versus: [PPO]}\n"
                    "  - {policy: Alpaca, setting: DP, versus: {policy: Alpaca, setting: PPO}}\n"
                    "  - DP against PPO\n")
    tables, problems = read_table_rows(path, {})
    assert problems[0].startswith("tables.yaml: table3 row 1: {'policy': 'Alpaca', 'setting': 'DP'} is not a "
                                  "comparison (a row with the row it is judged against under `versus`")
    assert problems[1] == ("tables.yaml: table3 row 2 versus: {'policy': 'Alpaca', 'colour': 'red'} is not a row "
                           "({policy, setting}, {responses} or {reward_model})")
    assert problems[2] == ("tables.yaml: table3 row 3 versus: a responses row is {responses: one of ['chosen', "
                           "'rejected']}, not {'responses': 'best'}")
    assert problems[3].startswith("tables.yaml: table3 row 4: ") and "is not a comparison" in problems[3]
    assert problems[4].startswith("tables.yaml: table3 row 6: 'DP against PPO' is not a comparison")
    assert len(problems) == 5
    assert [row.number for row in tables["table3"]] == [3, 5]


def test_a_comparison_of_a_row_with_itself_or_with_no_row_is_named(tmp_path):
    plan = plan_with_tables(tmp_path, {"table3": [
        {**DP, "versus": DP},
        {**DP, "versus": {"policy": "Nobody", "setting": "PPO"}},
        {**DP, "versus": {"policy": "Alpaca", "setting": "XP"}},
        {**CHOSEN, "versus": CHOSEN},
        {"policy": "Alpaca", "setting": "OP-32", "versus": {"policy": "Alpaca", "setting": "OP-2"}},  # run as OP-2
        {**CHOSEN, "versus": {"responses": "rejected"}}]})
    problems = table_problems(plan)
    assert "tables.yaml: table3 row 1: compares a row with itself" in problems
    assert any(p.startswith("tables.yaml: table3 row 2 versus policy: 'Nobody' is not one of") for p in problems)
    assert any(p.startswith("tables.yaml: table3 row 3 versus setting: 'XP' is not one of") for p in problems)
    assert "tables.yaml: table3 row 4: compares a row with itself" in problems
    assert "tables.yaml: table3 row 5: compares a row with itself" in problems
    assert len(problems) == 5  # row 6, the dataset's good against its bad replies, is a comparison


def test_table4_takes_the_datasets_replies_and_policy_rows(tmp_path):
    plan = tiny_plan()
    assert [(row.responses, row.policy, row.setting) for row in plan.tables["table4"]] == [
        ("chosen", None, None), (None, "Alpaca", "DP"), (None, "Alpaca", "PPO"), (None, "Alpaca", "IP-2")]
    assert human(plan).table4_rows()[:2] == [
        {"policy": "dataset", "setting": "good responses", "path": "results/eval/dataset/chosen/generations.parquet"},
        {"policy": ALPACA, "setting": "DP", "path": "results/eval/instruct/DP/generations.parquet"}]
    bad = plan_with_tables(tmp_path, {"table4": [{"responses": "best"}, {"reward_model": True},
                                                 {**DP, "versus": PPO}]})
    assert table_problems(bad)[:2] == [
        "tables.yaml: table4 row 1: a responses row is {responses: one of ['chosen', 'rejected']}, not "
        "{'responses': 'best'}",
        "tables.yaml: table4 row 2: a responses row is {responses: one of ['chosen', 'rejected']}, not "
        "{'reward_model': True}"]
    assert table_problems(bad)[2].startswith("tables.yaml: table4 row 3: {'policy': 'Alpaca', 'setting': 'DP', "
                                             "'versus':") and "is not a row" in table_problems(bad)[2]


# --- the block's checks ---------------------------------------------------------------------------------------

def test_tables_3_and_4_need_the_block(tmp_path):
    plan = tiny_plan(lambda c: c.pop("human_evaluation"))
    assert plan.studies["human_evaluation"] is None
    assert study_problems(plan, "human_evaluation") == [
        "tables.yaml: table3 needs the config's `human_evaluation` block (absent)",
        "tables.yaml: table4 needs the config's `human_evaluation` block (absent)"]
    assert "tables.yaml: table3 needs the config's `human_evaluation` block (absent)" in \
        plan_problems(plan) + plan.study_problems()
    no_rows = plan_with_tables(tmp_path, {"table2": [DP]}, lambda c: c.pop("human_evaluation"))
    assert study_problems(no_rows, "human_evaluation") == []


def test_more_pairs_than_test_prompts_is_named():
    study = tiny_plan().studies["human_evaluation"].block
    assert (study.pairs, study.shared_pairs, study.annotators, list(study.batches)) == (100, 10, 3, [1, 2, 3])
    assert study.simulated_annotators.noise == 0.3 and study.judgments is None
    few = tiny_plan(lambda c: c["data"].update(test_prompts=109))
    assert study_problems(few, "human_evaluation") == [
        "human_evaluation.pairs + shared_pairs: 110 pairs per comparison, but data.test_prompts is 109; each pair "
        "is a different test prompt"]
    assert study_problems(few, "human_evaluation")[0] in plan_problems(few) + few.study_problems()
    assert study_problems(tiny_plan(lambda c: c["data"].update(test_prompts=110)), "human_evaluation") == []
    smaller = tiny_plan(lambda c: (c["data"].update(test_prompts=2), c["human_evaluation"].update(pairs=1,
                                                                                               shared_pairs=0)))
    assert study_problems(smaller, "human_evaluation") == [
        "human_evaluation.table4_prompts: 3 is more than data.test_prompts (2)"]
    crowded = tiny_plan(lambda c: c["human_evaluation"].update(pairs=1, annotators=4))
    assert study_problems(crowded, "human_evaluation") == [
        "human_evaluation.annotators: 4 annotators, but 1 pairs for each of 3 comparisons leave some with no pair "
        "to judge"]
    enough = tiny_plan(lambda c: c["human_evaluation"].update(pairs=1, annotators=3))
    assert study_problems(enough, "human_evaluation") == []


def test_simulated_annotators_need_a_dataset_with_gold(tmp_path):
    problems = study_problems(tiny_plan(real_data), "human_evaluation")
    assert len(problems) == 1 and problems[0].startswith(
        "human_evaluation.judgments: the dataset 'synthetic_hh' has no gold reward, so no simulated annotators can "
        "judge; give the folder of people's judgment files")
    people = tiny_plan(lambda c: (real_data(c), c["human_evaluation"].update(judgments=str(tmp_path))))
    assert study_problems(people, "human_evaluation") == []
    table4_only = plan_with_tables(tmp_path, {"table4": [CHOSEN, DP]}, real_data)
    assert study_problems(table4_only, "human_evaluation") == []  # Table 4 needs no judge


# --- findings on Table 3 --------------------------------------------------------------------------------------

@pytest.mark.parametrize("row, versus", [(DP, {"policy": "Alpaca", "setting": "none"}), (IP2, PPO),
                                         (CHOSEN, PPO), (DP, DP)])
def test_a_net_win_claim_must_name_a_table3_comparison(tmp_path, row, versus):
    path = tmp_path / "findings.yaml"
    path.write_text(yaml.safe_dump([{**CLAIM, "row": row, "versus": versus}]))
    claims, problems = read_claims(tiny_plan(), path)
    assert claims == [] and problems == [
        f"findings.yaml: claim 'c': table3 has no comparison of {row!r} with {versus!r} (metric net_win)"]


def test_comparison_sides_in_either_order():
    plan = tiny_plan()
    third = plan.tables["table3"][2]  # DP against IP-2
    assert comparison_sides(plan, DP, IP2) == (third, third.versus)
    assert comparison_sides(plan, IP2, DP) == (third.versus, third)
    first = plan.tables["table3"][0]
    assert comparison_sides(plan, CHOSEN, DP) == (first.versus, first)
    assert comparison_sides(plan, DP, {**PPO, "setting": "PPO-noKL"}) is None
    assert comparison_sides(plan, "Alpaca DP", PPO) is None and comparison_sides(plan, DP, None) is None
    # The labels the judgments name the sides by, in Table 3's order whichever order the claim gives
    assert (side_label(plan, third), side_label(plan, third.versus)) == (f"{ALPACA} DP", f"{ALPACA} IP-2")
    assert comparison_sides(plan, IP2, PPO) is None


def test_net_win_claims_read_each_replicates_judgments(tmp_path):
    plan = tiny_plan(lambda c: c.update(replicates=2))
    claims, problems = read_claims(plan, plan.workflow_dir / "config" / "findings.yaml")
    assert problems == []
    ours = {claim["id"]: claim for claim in claims_for_rule(plan, claims) if claim["metric"] == "net_win"}
    assert sorted(ours) == ["human-dp-beats-chosen", "human-dp-beats-ppo", "human-ip2-beats-dp"]
    reversed_claim = ours["human-ip2-beats-dp"]  # Table 3 compares DP against IP-2: the claim names IP-2 first
    assert reversed_claim["sides"] == [f"{ALPACA} IP-2", f"{ALPACA} DP"]
    assert (reversed_claim["row"], reversed_claim["versus"]) == ("Alpaca IP-2", "Alpaca DP")
    assert reversed_claim["files"] == [["results/human_eval/judged.parquet"] * 2,
                                       ["results/replicate1/human_eval/judged.parquet"] * 2]
    assert ours["human-dp-beats-chosen"]["sides"] == [f"{ALPACA} DP", "dataset good responses"]
    people = tiny_plan(lambda c: (c.update(replicates=2), c["human_evaluation"].update(judgments=str(tmp_path))))
    claims, _ = read_claims(people, people.workflow_dir / "config" / "findings.yaml")
    files = next(c["files"] for c in claims_for_rule(people, claims) if c["id"] == "human-dp-beats-ppo")
    assert files == [["results/human_eval/judged.parquet"] * 2]  # people judge replicate 0 only


# --- files ----------------------------------------------------------------------------------------------------

def test_files_of_each_replicate_and_whose_judgments(tmp_path):
    plan = tiny_plan(lambda c: c.update(replicates=3))
    assert human(plan).replicates() == [0, 1, 2]
    assert human(plan).file("pairs.parquet", 2) == "results/replicate2/human_eval/pairs.parquet"
    assert human(plan).batch_files("html") == [f"results/human_eval/batch_{k}.html" for k in (1, 2, 3)]
    assert human(plan).batch_files("csv", 1)[0] == "results/replicate1/human_eval/batch_1.csv"
    assert human(plan).judgment_files(1) == [f"results/replicate1/human_eval/simulated/batch_{k}.json"
                                             for k in (1, 2, 3)]
    folder = tmp_path / "judgments"
    people = tiny_plan(lambda c: (c.update(replicates=3), c["human_evaluation"].update(judgments=str(folder))))
    assert human(people).replicates() == [0] and human(people).judgment_files() == []  # not there yet
    folder.mkdir()
    for name in ("b.json", "a.CSV", "notes.txt", "c.csv"):
        (folder / name).write_text("")
    assert human(people).judgment_files() == [str(folder / name) for name in ("a.CSV", "b.json", "c.csv")]


def test_what_all_builds_of_the_study_and_what_it_leaves_out_is_said_once(tmp_path):
    notes = []
    targets = human(tiny_plan()).targets(notes.append)  # simulated annotators: Tables 3 and 4 and the batches
    assert {"results/table3.csv", "results/report/table3.html", "results/table4.csv"} <= set(targets)
    assert "results/human_eval/batch_1.html" in targets and notes == []
    waiting = tiny_plan(lambda c: c["human_evaluation"].update(judgments=str(tmp_path / "none_yet")))
    targets = human(waiting).targets(notes.append)  # people's folder not there yet: the pages, no Table 3
    assert "results/table3.csv" not in targets and "results/human_eval/batch_1.html" in targets
    assert len(notes) == 1 and "leaves out results/table3.csv" in notes[0]
