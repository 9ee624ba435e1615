"""results/table_fine_grained.csv from evaluation files: the columns, means and intervals over replicates, and
empty gold columns for people's feedback on real data."""

import json

import pandas as pd
import pytest

from rrhf.studies.fine_grained.table import table_fine_grained


def files(folder, name, evaluation, measures):
    (folder / f"{name}.m.json").write_text(json.dumps(evaluation))
    (folder / f"{name}.f.json").write_text(json.dumps({f"{k}_mean": v for k, v in measures.items()}))
    return str(folder / f"{name}.m.json"), str(folder / f"{name}.f.json")


MEASURES = {"relevance_error_rate": 0.1, "factual_error_rate": 0.02, "completeness": 0.7,
            "relevance_rm_error_rate": 0.12, "factuality_rm_error_rate": 0.05, "completeness_rm": 0.4}


def test_the_table_over_replicates(tmp_path):
    rows = [{"policy": "tiny", "setting": "PPO"}, {"policy": "tiny", "setting": "FG-PPO"}]
    metrics, measures = [], []
    for replicate, shift in enumerate((0.0, 0.2)):
        for row, base in zip(rows, (0.0, 0.1)):
            m, f = files(tmp_path, f"{replicate}{row['setting']}",
                         {"ppl": 20 + shift, "reward_mean": 1 + base, "gold_reward_mean": 0.5 + shift,
                          "kl_to_initial_mean": 2.0},
                         {**MEASURES, "completeness": 0.6 + base + shift})
            metrics.append(m)
            measures.append(f)
    table = table_fine_grained(rows, metrics, measures, str(tmp_path / "t.csv"), replicates=2)
    written = pd.read_csv(tmp_path / "t.csv")
    assert list(written.columns[:10]) == ["policy", "setting",
                                                                        "relevance_error_rate",
                                                                        "relevance_error_rate_ci95",
                                                                        "factual_error_rate",
                                                                        "factual_error_rate_ci95", "completeness",
                                                                        "completeness_ci95", "relevance_rm_error_rate",
                                                                        "factuality_rm_error_rate"]
    assert written["completeness"].tolist() == pytest.approx([0.7, 0.8])  # (0.6 + 0.8) / 2, (0.7 + 0.9) / 2
    assert written["completeness_ci95"].iloc[0] == pytest.approx(12.706 * 0.1, rel=1e-3)  # t(0.975, 1) x sem
    assert written["kl"].tolist() == [2.0, 2.0] and written["replicates"].tolist() == [2, 2]
    assert table["setting"].tolist() == ["PPO", "FG-PPO"]


def test_people_feedback_leaves_the_gold_columns_empty(tmp_path):
    m, f = files(tmp_path, "real", {"ppl": 20.0, "reward_mean": 1.0},
                 {**MEASURES, "relevance_error_rate": None, "factual_error_rate": None, "completeness": None})
    table_fine_grained([{"policy": "Alpaca", "setting": "FG-PPO"}], [m], [f], str(tmp_path / "t.csv"))
    row = pd.read_csv(tmp_path / "t.csv").iloc[0]
    assert row[["relevance_error_rate", "completeness", "gold_reward", "kl"]].isna().all()
    assert row["relevance_rm_error_rate"] == 0.12
    m, f = files(tmp_path, "broken", {"ppl": 20.0, "reward_mean": 1.0}, {**MEASURES, "completeness_rm": None})
    with pytest.raises(ValueError, match="completeness_rm of row 0"):
        table_fine_grained([{"policy": "Alpaca", "setting": "FG-PPO"}], [m], [f], str(tmp_path / "u.csv"))
    assert not (tmp_path / "u.csv").exists()
