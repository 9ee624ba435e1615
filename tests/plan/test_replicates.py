"""Replicates without Snakemake: seeds and folders per replicate, the plan's paths, tables over replicates and the
report's intervals."""

import copy

import pandas as pd
import pytest
import yaml

from rrhf.config.schema import fill_defaults
from rrhf.plan.plan import Plan
from rrhf.plan.replicates import Replicates, folder_of, replicate_number, replicate_seed
from rrhf.plan.table_rows import entries, report_rows
from rrhf.report.pages import table_page, with_intervals
from rrhf.report.tables import by_replicate, over_replicates, table2
from rrhf.statistics import interval_text, t_interval
from rrhf.studies.registry import STUDIES
from workflow_helpers import REPO

TINY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())


def plan_of(config, **changes) -> Plan:
    config = copy.deepcopy(config)
    config.update(changes)
    return Plan(fill_defaults(config), REPO, STUDIES)


def test_replicate_zero_keeps_every_seed_and_others_derive_stable_distinct_seeds():
    assert replicate_seed(42, 0) == 42
    derived = [replicate_seed(42, r) for r in range(1, 6)]
    assert len(set(derived)) == 5 and 42 not in derived
    assert all(0 <= seed < 2**31 for seed in derived)
    assert derived == [replicate_seed(42, r) for r in range(1, 6)]  # a pure function of (seed, replicate)
    assert replicate_seed(43, 1) != replicate_seed(42, 1)


def test_folders_and_numbers_round_trip():
    assert folder_of(0) == "" and folder_of(3) == "replicate3/"
    assert [replicate_number(folder_of(r)) for r in range(4)] == [0, 1, 2, 3]
    for bad in ("replicate0/", "replicate1", "r1/", -1):
        with pytest.raises(ValueError):
            replicate_number(bad)


def test_a_stage_changes_when_it_or_an_earlier_stage_is_reseeded():
    paper = Replicates(3, ["sampling", "training"])
    assert not paper.changes("models") and paper.changes("sampling") and paper.changes("training")
    assert paper.folder(2, "models") == "" and paper.folder(2, "training") == "replicate2/"
    assert paper.seed(7, 2, "models") == 7 and paper.seed(7, 2, "sampling") == replicate_seed(7, 2)
    with pytest.raises(ValueError, match="not stages"):
        Replicates(2, ["sampling", "evaluation"])


def test_replicate_zero_asks_for_exactly_todays_paths_and_parameters():
    one, three = plan_of(TINY), plan_of(TINY, replicates=3)
    for table in ("table2", "table5"):
        assert entries(one, table, "metrics.json") == entries(three, table, "metrics.json", 0)
    assert report_rows(one, "table6") == report_rows(three, "table6", 0)
    assert three.rrhf_for("DP", 0) == one.rrhf_for("DP") == {**one.config["rrhf"], "rank_weight": 1.0}
    assert three.ppo_for(0) is three.config["ppo"]
    assert three.build("base", 0) == one.build("base") == one.config["models"]["base"]["build"]
    assert three.sampling_for("beam", 0) == one.sampling_for("beam")
    assert three.best_of_n_for(0) == one.config["evaluation"]["best_of_n"]


def test_the_tiny_default_reseeds_models_sampling_and_training_but_not_the_tokenizer_or_data():
    plan = plan_of(TINY, replicates=3)
    assert plan.model_path("base", 2) == "resources/models/replicate2/base"
    assert plan.model_path("tokenizer", 2) == "resources/models/tokenizer"
    assert plan.data_file("test") == "resources/data/synthetic_hh/test.parquet"
    assert plan.build("base", 2)["training"]["seed"] == replicate_seed(1, 2)
    assert plan.rrhf_for("DP", 2)["training"]["seed"] == replicate_seed(42, 2)
    assert plan.ppo_for(1)["training"]["seed"] == replicate_seed(11, 1)
    assert plan.best_of_n_for(1)["seed"] == replicate_seed(0, 1)
    assert plan.evaluation_file("instruct", "none", "metrics.json", 1) == \
        "results/replicate1/eval/instruct/none/metrics.json"
    assert plan.scored_file("instruct", "P", 1) == "results/replicate1/scored/instruct/P.parquet"
    assert plan.starting_model("instruct", "IP-3", 2) == "results/replicate2/models/instruct/IP-2"


def test_the_paper_config_shares_what_its_given_models_make():
    plan = plan_of(PAPER, replicates=2)
    assert plan.evaluation_file("alpaca", "none", "metrics.json", 1) == "results/eval/alpaca/none/metrics.json"
    assert plan.provided_rewards_file(1) == "results/rewards/provided.parquet"
    assert plan.scored_file("alpaca", "P", 1) == "results/scored/alpaca/P.parquet"
    assert plan.scored_file("alpaca", "DP", 1) == "results/replicate1/scored/alpaca/DP.parquet"
    assert plan.evaluation_file("alpaca", "DP", "metrics.json", 1) == "results/replicate1/eval/alpaca/DP/metrics.json"
    assert plan.model_path("alpaca", 1) == plan.model_path("alpaca", 0)
    shared = [path for _, path in entries(plan, "table2", "metrics.json", 1) if "replicate1/" not in path]
    assert "results/eval/dataset/chosen/metrics.json" in shared and "results/eval/llama/none/metrics.json" in shared


# --- intervals ------------------------------------------------------------------------------------------------

def test_t_interval_against_hand_computed_values():
    # mean 2, sd 1, n 3: t_{0.975, 2} = 4.302653 -> half-width 4.302653 / sqrt(3) = 2.484138
    mean, half = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(2.484138, abs=1e-6)
    assert t_interval([5.0]) == (5.0, None)
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        t_interval([])


@pytest.mark.parametrize("mean, half, text", [
    (2.71111, 0.0995656, "2.71 ± 0.10"), (28.039, 1.3, "28.0 ± 1.3"), (0.72353, 0.01206, "0.724 ± 0.012"),
    (123.4, 15.2, "123 ± 15"), (2.71111, None, "2.711"), (None, 0.1, "-"), (1.5, 0.0, "1.5 ± 0"),
])
def test_interval_text_has_the_precision_the_interval_warrants(mean, half, text):
    assert interval_text(mean, half) == text


def test_tables_over_replicates_give_means_and_intervals_beside_todays_columns(tmp_path):
    rows = [{"policy": "A", "setting": "DP"}, {"policy": "A", "setting": "none"}]
    files = []
    for r, (reward, gold) in enumerate([(1.0, 0.5), (2.0, 0.6), (3.0, 0.7)]):
        for i, row in enumerate(rows):
            path = tmp_path / f"r{r}_{i}.json"
            path.write_text(f'{{"ppl": {10 + r}, "reward_mean": {reward + i}, "gold_reward_mean": {gold}, '
                            f'"reward_sem": 0.1, "repetition": 0.01}}')
            files.append(str(path))
    one = table2(rows, files[:2], str(tmp_path / "one.csv"))
    assert list(one.columns) == ["policy", "setting", "ppl", "reward", "reward_sem", "gold_reward",
                                 "gold_reward_sem", "repetition"]
    three = table2(rows, files, str(tmp_path / "three.csv"), replicates=3)
    assert list(three.columns) == ["policy", "setting", "ppl", "ppl_ci95", "reward", "reward_ci95", "reward_sem",
                                   "gold_reward", "gold_reward_ci95", "gold_reward_sem", "repetition",
                                   "replicates"]
    assert three["reward"].tolist() == [2.0, 3.0] and three["ppl"].tolist() == [11.0, 11.0]
    assert three["reward_ci95"].tolist() == pytest.approx([2.484138] * 2, abs=1e-6)
    assert three["repetition"].tolist() == [0.01, 0.01] and three["replicates"].tolist() == [3, 3]
    with pytest.raises(ValueError, match="5 files for 2 rows x 3 replicates"):
        by_replicate(files[:5], 2, 3)
    page = table_page(str(tmp_path / "three.csv"), "T", "note", str(tmp_path / "three.html"))
    assert page["reward"].tolist() == ["2.0 ± 2.5", "3.0 ± 2.5"] and "reward_ci95" not in page.columns
    assert '<td class="number">2.0 ± 2.5</td>' in (tmp_path / "three.html").read_text()


def test_one_frame_is_its_own_table_over_replicates():
    frame = pd.DataFrame({"policy": ["A"], "setting": ["DP"], "reward": [1.0]})
    assert over_replicates([frame]) is frame
    assert with_intervals(frame.astype(str)) [1] is False
