"""The over-optimisation study: best-of-n at its analytic KL, curves from training logs, points from evaluations."""

import json
import math

import pandas as pd
import pytest

from rrhf.io import write_parquet
from rrhf.studies.overoptimisation.curves import (
    best_of_n_curve,
    best_of_n_kl,
    evaluation_point,
    online_curve,
    plot_overoptimisation,
    ppo_curve,
    with_best_of_n_at_same_kl,
    write_overoptimisation,
)

PROMPT = "\n\nHuman: How do I bake bread?\n\nAssistant:"


def test_best_of_n_kl_is_the_analytic_formula():
    assert best_of_n_kl(1) == 0.0
    assert best_of_n_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl(32) == pytest.approx(math.log(32) - 31 / 32)
    assert all(best_of_n_kl(n) < best_of_n_kl(2 * n) for n in (1, 2, 4, 8, 16))


def test_best_of_n_keeps_the_best_of_the_first_n_samples_by_reward_not_by_gold():
    samples = pd.DataFrame({"prompt_id": ["a"] * 4 + ["b"] * 4, "response_index": [0, 1, 2, 3] * 2,
                            "reward": [0.0, 2.0, 1.0, 5.0, 1.0, 0.0, 3.0, 3.0],
                            "gold_reward": [0.1, 0.2, 0.3, -0.5, 0.4, 0.5, 0.6, 0.7]})
    curve = best_of_n_curve(samples, [1, 2, 4]).set_index("step")
    assert curve.loc[1, "proxy_reward"] == pytest.approx((0.0 + 1.0) / 2)
    assert curve.loc[2, "proxy_reward"] == pytest.approx((2.0 + 1.0) / 2)
    assert curve.loc[2, "gold_reward"] == pytest.approx((0.2 + 0.4) / 2)
    # n = 4: prompt a's highest reward has the lowest gold (the proxy's flaw); b's tie keeps the first (index 2)
    assert curve.loc[4, "gold_reward"] == pytest.approx((-0.5 + 0.6) / 2)
    assert curve.loc[4, "sqrt_kl"] == pytest.approx(best_of_n_kl(4) ** 0.5)
    with pytest.raises(ValueError, match="best-of-8 needs 8 samples per prompt; the samples have 4"):
        best_of_n_curve(samples, [8])


def test_ppo_rows_are_placed_at_the_step_their_rollouts_were_drawn():
    log = pd.DataFrame({"iteration": [1, 2, 3], "step": [4, 8, 12], "reward": [0.1, 0.5, 0.9],
                        "gold_reward": [0.2, 0.3, 0.1], "kl": [0.0, 1.0, 4.0]})
    curve = ppo_curve(log, "PPO-noKL")
    assert list(curve["step"]) == [0, 4, 8]
    assert list(curve["sqrt_kl"]) == [0.0, 1.0, 2.0]
    assert set(curve["optimiser"]) == {"PPO-noKL"}


def test_online_rounds_are_averaged():
    samples = pd.DataFrame({"step": [0, 0, 2, 2], "round": [0, 0, 1, 1], "reward": [1.0, 3.0, 5.0, 7.0],
                            "gold_reward": [0.0, 0.2, 0.4, 0.6], "kl": [0.0, 0.0, 1.0, 3.0]})
    curve = online_curve(samples, "OP-2")
    assert list(curve["step"]) == [0, 2]
    assert list(curve["proxy_reward"]) == [2.0, 6.0]
    assert list(curve["kl"]) == [0.0, 2.0]


def test_a_point_needs_the_kl_of_its_evaluation():
    point = evaluation_point({"reward_mean": 1.0, "gold_reward_mean": 0.5, "kl_to_initial_mean": 9.0}, "DP")
    assert point.iloc[0]["sqrt_kl"] == 3.0 and point.iloc[0]["kind"] == "point"
    with pytest.raises(ValueError, match="DP has no kl_to_initial_mean"):
        evaluation_point({"reward_mean": 1.0, "gold_reward_mean": 0.5}, "DP")


def test_best_of_n_gold_is_interpolated_at_each_other_rows_kl():
    frame = pd.DataFrame({"optimiser": ["best-of-n", "best-of-n", "PPO", "PPO", "DP"],
                          "sqrt_kl": [0.0, 1.0, 0.5, 2.0, 1.0], "gold_reward": [0.2, 0.6, 0.0, 0.0, 0.3]})
    compared = with_best_of_n_at_same_kl(frame)["best_of_n_gold_at_same_kl"].tolist()
    assert math.isnan(compared[0]) and math.isnan(compared[1])  # best-of-n itself
    assert compared[2] == pytest.approx(0.4) and math.isnan(compared[3]) and compared[4] == pytest.approx(0.6)


def test_the_study_writes_its_table_and_figure(tmp_path):
    replies = [" Sure! First, mix flour, yeast and salt for the bread.", " Whatever.",
               " What a wonderful question! I absolutely love this!", " I don't know."]
    samples = pd.DataFrame({"prompt_id": ["a"] * 4, "prompt": [PROMPT] * 4, "response_index": range(4),
                            "response": replies, "reward": [1.0, -1.0, 3.0, 0.0]})
    write_parquet(samples, tmp_path / "samples.parquet", {"dataset": {"source": "synthetic"}})
    pd.DataFrame({"step": [2, 4], "reward": [0.1, 0.2], "gold_reward": [0.0, -0.1], "kl": [0.5, 1.5]}).to_parquet(
        tmp_path / "train_log.parquet")
    (tmp_path / "metrics.json").write_text(json.dumps({"reward_mean": 0.3, "gold_reward_mean": 0.2,
                                                       "kl_to_initial_mean": 2.0}))
    frame = write_overoptimisation(str(tmp_path / "samples.parquet"), [4, 1, 2],
                                   {"PPO": str(tmp_path / "train_log.parquet")},
                                   {"DP": str(tmp_path / "metrics.json")}, str(tmp_path / "study.csv"))
    written = pd.read_csv(tmp_path / "study.csv")
    assert list(written["optimiser"]) == ["best-of-n"] * 3 + ["PPO"] * 2 + ["DP"]
    best_of_4 = written[(written["optimiser"] == "best-of-n") & (written["step"] == 4)].iloc[0]
    assert best_of_4["proxy_reward"] == 3.0 and best_of_4["gold_reward"] < 0  # the flattering reply, gold padding
    assert len(frame) == len(written)
    plot_overoptimisation(str(tmp_path / "study.csv"), str(tmp_path / "study.png"))
    assert (tmp_path / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
