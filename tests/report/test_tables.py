"""Tables from metrics and scored sets; the loss-curve figure."""

import json

import pandas as pd
import pytest

from rrhf.io import write_parquet
from rrhf.report.tables import TABLE2_COLUMNS, TABLE6_COLUMNS, TABLE7_COLUMNS, table2, table5, table6, table7


def metrics_file(folder, name, reward, ppl, gold=None, **extra):
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"reward_mean": reward, "reward_sem": 0.1, "gold_reward_mean": gold,
                                "gold_reward_sem": None if gold is None else 0.05, "repetition": 0.01, "ppl": ppl,
                                "n": 3, **extra}))
    return str(path)


def scored_file(folder, name, rewards_by_prompt):
    rows = [{"prompt_id": pid, "reward": r} for pid, rewards in rewards_by_prompt.items() for r in rewards]
    path = folder / f"{name}.parquet"
    write_parquet(pd.DataFrame(rows), path, {"stage": "test"})
    return str(path)


def test_table6_values_by_hand(tmp_path):
    rows = [{"policy": "tiny-base", "setting": "DP"}, {"policy": "tiny-instruct", "setting": "P"}]
    metrics = [metrics_file(tmp_path, "a", 1.5, 7.0, gold=0.25), metrics_file(tmp_path, "b", -0.5, 3.0, gold=0.5)]
    scored = [scored_file(tmp_path, "a", {"p1": [0.0, 2.0], "p2": [1.0, 1.0]}),
              scored_file(tmp_path, "b", {"p1": [-1.0, 3.0]})]
    table = table6(rows, metrics, scored, str(tmp_path / "table6.csv"))
    written = pd.read_csv(tmp_path / "table6.csv")
    assert list(written.columns) == TABLE6_COLUMNS
    pd.testing.assert_frame_equal(written, table, check_dtype=False)
    first = written.iloc[0]
    assert (first["policy"], first["setting"], first["ppl"], first["reward"]) == ("tiny-base", "DP", 7.0, 1.5)
    assert (first["reward_sem"], first["gold_reward"], first["gold_reward_sem"], first["repetition"]) == (
        0.1, 0.25, 0.05, 0.01)
    assert first["train_reward_mean"] == pytest.approx(1.0)  # (0 + 2 + 1 + 1) / 4
    assert first["train_reward_std"] == pytest.approx(0.5 ** 0.5)  # population std of 0, 2, 1, 1
    assert first["train_reward_max"] == pytest.approx(1.5)  # mean of the best per prompt: (2 + 1) / 2
    assert written.iloc[1]["train_reward_max"] == pytest.approx(3.0)


def test_table6_online_row_has_no_training_set_statistics(tmp_path):
    rows = [{"policy": "tiny-instruct", "setting": "IP-2"}, {"policy": "tiny-instruct", "setting": "OP-2+KL"}]
    metrics = [metrics_file(tmp_path, "ip", 1.0, 5.0), metrics_file(tmp_path, "op", 2.0, 9.0)]
    scored = [scored_file(tmp_path, "ip", {"p1": [0.0, 4.0]}), None]
    table6(rows, metrics, scored, str(tmp_path / "table6.csv"))
    written = pd.read_csv(tmp_path / "table6.csv", keep_default_na=False)
    assert float(written["train_reward_max"].iloc[0]) == 4.0
    online = written.iloc[1]
    assert (online["setting"], online["reward"], online["ppl"]) == ("OP-2+KL", 2.0, 9.0)
    assert [online[c] for c in ("train_reward_mean", "train_reward_std", "train_reward_max")] == ["", "", ""]


def test_table7_and_row_order(tmp_path):
    rows = [{"policy": "A", "setting": "BP", "rank_weight": 1.0}, {"policy": "A", "setting": "BP-norank",
                                                                   "rank_weight": 0.0}]
    metrics = [metrics_file(tmp_path, "bp", 2.0, 5.0), metrics_file(tmp_path, "norank", 1.0, 4.0)]
    written = table7(rows, metrics, str(tmp_path / "table7.csv"))
    assert written[["setting", "rank_weight", "reward", "ppl"]].values.tolist() == [["BP", 1.0, 2.0, 5.0],
                                                                                 ["BP-norank", 0.0, 1.0, 4.0]]


def test_non_finite_value_names_the_row_and_writes_nothing(tmp_path):
    rows = [{"policy": "A", "setting": "BP", "rank_weight": 1.0}, {"policy": "B", "setting": "DP", "rank_weight": 1.0}]
    metrics = [metrics_file(tmp_path, "ok", 2.0, 5.0), metrics_file(tmp_path, "nan", 1.0, float("nan"))]
    with pytest.raises(ValueError, match=r"nan.*metric ppl is nan"):
        table7(rows, metrics, str(tmp_path / "table7.csv"))
    assert list(tmp_path.glob("*.csv")) == [] and list(tmp_path.glob(".table7*")) == []


def test_gold_columns_are_empty_where_the_data_has_no_gold_reward(tmp_path):
    rows = [{"policy": "A", "setting": "BP", "rank_weight": 1.0}, {"policy": "A", "setting": "BP-norank",
                                                                   "rank_weight": 0.0}]
    metrics = [metrics_file(tmp_path, "bp", 2.0, 5.0), metrics_file(tmp_path, "norank", 1.0, 4.0, gold=0.5)]
    table7(rows, metrics, str(tmp_path / "table7.csv"))
    lines = (tmp_path / "table7.csv").read_text().splitlines()
    assert lines[0].split(",") == TABLE7_COLUMNS
    assert lines[1] == "A,BP,1,5,2,0.1,,,0.01"  # gold_reward and gold_reward_sem empty
    assert lines[2] == "A,BP-norank,0,4,1,0.1,0.5,0.05,0.01"


def test_missing_metric_names_the_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"ppl": 3.0}))
    with pytest.raises(ValueError, match=r"m\.json: metric reward_mean is missing"):
        table7([{"policy": "A", "setting": "BP", "rank_weight": 1.0}], [str(path)], str(tmp_path / "t.csv"))


def test_table2_leaves_perplexity_empty_for_best_of_n_only(tmp_path):
    rows = [{"policy": "dataset", "setting": "good responses"}, {"policy": "A", "setting": "best-of-4"}]
    metrics = [metrics_file(tmp_path, "good", 1.0, 20.0, gold=0.5),
               metrics_file(tmp_path, "best", 2.0, None, gold=0.25, best_of=4)]
    table2(rows, metrics, str(tmp_path / "table2.csv"))
    lines = (tmp_path / "table2.csv").read_text().splitlines()
    assert lines[0].split(",") == TABLE2_COLUMNS
    assert lines[1] == "dataset,good responses,20,1,0.1,0.5,0.05,0.01"
    assert lines[2] == "A,best-of-4,,2,0.1,0.25,0.05,0.01"
    policy_without_ppl = metrics_file(tmp_path, "policy", 2.0, None)
    with pytest.raises(ValueError, match=r"policy\.json: metric ppl is None"):
        table2(rows[:1], [policy_without_ppl], str(tmp_path / "other.csv"))
    assert not (tmp_path / "other.csv").exists()


def test_table5_rows_in_order(tmp_path):
    files = []
    for name, accuracy in (("rm", 0.75), ("policy", 0.5)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps({"accuracy": accuracy, "pairs": 8, "scorer": name, "model": name}))
    rows = [{"policy": "RM", "setting": "reward model"}, {"policy": "A", "setting": "PPO"}]
    table = table5(rows, list(map(str, files)), str(tmp_path / "table5.csv"))
    assert pd.read_csv(tmp_path / "table5.csv").values.tolist() == [["RM", "reward model", 0.75, 8],
                                                                   ["A", "PPO", 0.5, 8]]
    assert table["accuracy"].tolist() == [0.75, 0.5]
