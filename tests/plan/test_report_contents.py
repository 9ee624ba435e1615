"""rrhf.plan.report_contents: what the report of a run shows, read from the plan (the rules only list it)."""

from plan_helpers import tiny_plan
from rrhf.plan import paths
from rrhf.plan.report_contents import (
    REPORT_TABLES,
    TABLE_TITLES,
    evaluated_tables,
    loss_curve_file,
    report_files,
    summary_tables,
    table_label,
)


def test_the_report_shows_each_tables_page_curves_rewards_and_generations():
    plan = tiny_plan()
    files = report_files(plan)
    assert [paths.TABLE_PAGE(table=table) for table in REPORT_TABLES] == files[:4]
    assert "results/figures/loss_curve_instruct_DP.png" in files  # a trained row's curves, once
    assert len(files) == len(set(files))
    assert evaluated_tables(plan) == ["table2", "table6", "table7"]  # Table 5's rows score test pairs
    assert "results/report/generations_table5.html" not in files and "results/figures/intervals_table6.png" not in files
    with_replicates = report_files(tiny_plan(lambda c: c.update(replicates=3)))
    assert set(with_replicates) - set(files) == {paths.INTERVALS_FIGURE(table=t) for t in REPORT_TABLES}


def test_a_loss_curve_is_named_by_the_trained_model_and_the_summary_by_what_all_makes():
    assert loss_curve_file("results/models/instruct/OP-2+KL") == "results/figures/loss_curve_instruct_OP-2+KL.png"
    plan = tiny_plan()
    assert summary_tables(plan, []) == REPORT_TABLES
    assert summary_tables(plan, ["results/table3.csv", "results/prompt_formats.csv"]) == \
        [*REPORT_TABLES, "table3", "prompt_formats"]
    assert table_label("table6") == "Table 6" and TABLE_TITLES["table7"] == "Table 7: ranking-loss ablation"


def test_shards_and_dataset_sources_and_reward_builds_come_from_the_plan():
    assert paths.sharded(paths.SAMPLES(), 1) == paths.SAMPLES()
    assert paths.sharded("results/samples/instruct/top_p.parquet", 4) == \
        "results/samples/instruct/top_p/shard{shard}.parquet"
    plan = tiny_plan()
    assert plan.dataset_source_files("synthetic_hh", "train") == []  # generated, no file
    hh = tiny_plan(lambda c: c["datasets"].update(hh={"source": "anthropic_jsonl", "file": "hh.jsonl.gz"}))
    assert hh.dataset_source_files("hh", "test") == ["hh.jsonl.gz"]
    assert plan.reward_builds() == [(0, "reward"), (0, "reward_unbiased")]
    assert tiny_plan(lambda c: c.update(replicates=2)).reward_builds()[2:] == [(1, "reward"), (1, "reward_unbiased")]
