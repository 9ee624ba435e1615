"""Findings without Snakemake: claims read and checked against the tables, effects paired over test prompts,
intervals over replicates and verdicts."""

import copy

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from rrhf.config.schema import fill_defaults
from rrhf.io import write_json, write_parquet
from rrhf.plan.plan import Plan
from rrhf.statistics import verdict
from rrhf.studies.findings.claims import claims_for_rule, read_claims
from rrhf.studies.findings.verdicts import findings, replicate_effect
from rrhf.studies.registry import STUDIES
from workflow_helpers import REPO

TINY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
CLAIM = {"id": "c", "claim": "a claim", "source": "Table 2", "metric": "reward",
         "row": {"policy": "Alpaca", "setting": "DP"}, "versus": {"policy": "Alpaca", "setting": "none"},
         "direction": "higher"}


def plan_of(config, **changes) -> Plan:
    config = copy.deepcopy(config)
    config.update(changes)
    return Plan(fill_defaults(config), REPO, STUDIES)


# --- verdicts -------------------------------------------------------------------------------------------------

def test_verdicts_against_hand_computed_intervals():
    # mean 1, sd 0.2, n 3: half-width t_{0.975,2} * 0.2 / sqrt(3) = 4.302653 * 0.115470 = 0.496827
    result = verdict([1.0, 1.2, 0.8], "higher")
    assert result["effect"] == pytest.approx(1.0)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.503173, 1.496827), abs=1e-6)
    assert result["verdict"] == "holds"
    assert verdict([1.0, 1.2, 0.8], "lower")["verdict"] == "contradicted"
    wide = verdict([1.0, 2.0, 3.0], "higher")  # 2 +- 2.484: contains zero
    assert wide["verdict"] == "inconclusive" and wide["ci_low"] == pytest.approx(-0.484138, abs=1e-6)


def test_one_replicate_has_no_interval_and_no_verdict_and_says_so():
    result = verdict([0.7], "higher")
    assert result["effect"] == 0.7 and result["ci_low"] is None and result["verdict"] == "inconclusive"
    assert "one replicate" in result["note"]


def test_ties_are_inconclusive():
    assert verdict([0.0, 0.0, 0.0], "higher")["verdict"] == "inconclusive"
    assert verdict([0.0, 0.0, 0.0], "lower")["verdict"] == "inconclusive"


def test_effects_are_paired_by_prompt_and_need_the_same_prompts():
    row = pd.Series([3.0, 1.0, 2.0], index=["b", "a", "c"])
    versus = pd.Series([0.0, 1.0, 1.0], index=["a", "b", "c"])
    assert replicate_effect(row, versus, "c") == pytest.approx(((3 - 1) + (1 - 0) + (2 - 1)) / 3)
    with pytest.raises(ValueError, match="claim c: the two rows answered different test prompts"):
        replicate_effect(row, versus.rename({"c": "d"}), "c")
    with pytest.raises(ValueError, match="claim c: 1 prompts have no value"):
        replicate_effect(row, pd.Series([0.0, None, 1.0], index=["a", "b", "c"]), "c")
    assert replicate_effect(14.0, 12.5, "c") == 1.5


def generations(path, values, prompts):
    write_parquet(pd.DataFrame({"prompt_id": prompts, "reward": values, "gold_reward": values}), path, {})
    return str(path)


def synthetic_claim(tmp_path, effect: float, name: str):
    """A claim over 3 replicates of 200 test prompts whose row is its versus plus ``effect`` plus noise."""
    rng = np.random.default_rng(0)
    prompts = [f"p{i}" for i in range(200)]
    files = []
    for r in range(3):
        base = rng.normal(0.0, 1.0, len(prompts))
        row = base + effect + rng.normal(0, 0.1, 200)
        files.append([generations(tmp_path / f"{name}_row{r}.parquet", row, prompts),
                      generations(tmp_path / f"{name}_versus{r}.parquet", base + rng.normal(0, 0.1, 200), prompts)])
    return {**CLAIM, "id": name, "row": "Alpaca DP", "versus": "Alpaca none", "files": files}


def test_a_synthetic_effect_holds_and_a_null_effect_is_inconclusive(tmp_path):
    claims = [synthetic_claim(tmp_path, 0.3, "real"), synthetic_claim(tmp_path, 0.0, "null"),
              {**synthetic_claim(tmp_path, -0.3, "reversed")}]
    frame = findings(claims, str(tmp_path / "findings.csv"))
    by_id = frame.set_index("id")
    assert by_id.loc["real", "verdict"] == "holds" and by_id.loc["real", "effect"] == pytest.approx(0.3, abs=0.03)
    assert by_id.loc["null", "verdict"] == "inconclusive"
    assert by_id.loc["null", "ci_low"] < 0 < by_id.loc["null", "ci_high"]
    assert by_id.loc["reversed", "verdict"] == "contradicted"
    written = pd.read_csv(tmp_path / "findings.csv")
    assert list(written["verdict"]) == ["holds", "inconclusive", "contradicted"]
    assert len(written["replicate_effects"][0].split()) == 3


def test_row_level_metrics_are_differences_of_the_rows_values(tmp_path):
    files = []
    for r, (a, b) in enumerate([(0.70, 0.60), (0.72, 0.61), (0.71, 0.60)]):
        write_json({"accuracy": a, "pairs": 10}, tmp_path / f"a{r}.json")
        write_json({"accuracy": b, "pairs": 10}, tmp_path / f"b{r}.json")
        files.append([str(tmp_path / f"a{r}.json"), str(tmp_path / f"b{r}.json")])
    frame = findings([{**CLAIM, "metric": "accuracy", "row": "x", "versus": "y", "files": files}],
                     str(tmp_path / "f.csv"))
    assert frame["effect"][0] == pytest.approx(np.mean([0.10, 0.11, 0.11]))
    assert frame["verdict"][0] == "holds"


# --- claims as data -------------------------------------------------------------------------------------------

def test_the_projects_findings_file_is_sound_for_both_configs():
    for config in (TINY, PAPER):
        plan = plan_of(config)
        claims, problems = read_claims(plan, REPO / "config" / "findings.yaml")
        assert problems == [] and len(claims) >= 12
    sources = " ".join(claim.source for claim in claims)
    for where in ("Table 2", "Table 5", "Table 6", "Table 7", "Section 4.3", "Section 5", "gold"):
        assert where in sources, where


def test_online_rows_are_found_under_the_name_the_config_runs_them_as():
    plan = plan_of(TINY, replicates=2)
    claims, problems = read_claims(plan, REPO / "config" / "findings.yaml")
    online = next(c for c in claims if c.id == "online-raises-reward")
    assert online.row.listed_setting == "OP-32" and online.row.setting == "OP-2"
    files = next(c for c in claims_for_rule(plan, claims) if c["id"] == "online-raises-reward")["files"]
    assert files == [["results/eval/instruct/OP-2/generations.parquet", "results/eval/instruct/DP/generations.parquet"],
                     ["results/replicate1/eval/instruct/OP-2/generations.parquet",
                      "results/replicate1/eval/instruct/DP/generations.parquet"]]


def test_a_point_of_the_overoptimisation_study_is_a_row_for_evaluation_metrics(tmp_path):
    plan = plan_of(TINY, replicates=2)
    claims, problems = read_claims(plan, REPO / "config" / "findings.yaml")
    claim = next(c for c in claims if c.id == "ppo-kl-limits-gold-drop")
    assert problems == [] and claim.versus.table == "overoptimisation" and claim.versus.setting == "PPO-noKL"
    files = next(c for c in claims_for_rule(plan, claims) if c["id"] == "ppo-kl-limits-gold-drop")["files"]
    assert files[1] == ["results/replicate1/eval/instruct/PPO/generations.parquet",
                        "results/replicate1/eval/instruct/PPO-noKL/generations.parquet"]
    path = tmp_path / "findings.yaml"
    path.write_text(yaml.safe_dump([{**CLAIM, "row": {"policy": "Alpaca", "setting": "PPO-noKL"}}]))
    without_study = {key: value for key, value in TINY.items() if key != "overoptimisation"}
    claims, problems = read_claims(plan_of(without_study), path)
    assert claims == [] and "nor a point of `overoptimisation`" in problems[0], problems
    noKL = {"policy": "Alpaca", "setting": "PPO-noKL"}
    path.write_text(yaml.safe_dump([{**CLAIM, "metric": "accuracy", "row": noKL}]))
    assert "is no row of table5 (metric accuracy)" in read_claims(plan, path)[1][0]  # Table 5 has no study rows


@pytest.mark.parametrize("change, expected", [
    ({"row": {"policy": "LLaMA", "setting": "SP"}}, "claim 'c': row {'policy': 'LLaMA', 'setting': 'SP'} is no row"),
    ({"metric": "accuracy", "row": {"policy": "Alpaca", "setting": "SP"}}, "is no row of table5 (metric accuracy)"),
    ({"metric": "train_reward_mean", "row": {"policy": "Alpaca", "setting": "OP-32"}},
     "has no fixed training set (an online row)"),
    ({"metric": "bleu"}, "metric 'bleu' is not one of"),
    ({"direction": "up"}, "direction 'up' is not one of ['higher', 'lower']"),
    ({"versus": {"policy": "Alpaca", "setting": "DP"}}, "row and versus are the same row"),
    ({"claim": None, "extra": 1}, "unknown ['extra']"),
])
def test_a_claim_that_cannot_be_measured_is_named(tmp_path, change, expected):
    claim = {**CLAIM, **change}
    claim = {key: value for key, value in claim.items() if value is not None}
    path = tmp_path / "findings.yaml"
    path.write_text(yaml.safe_dump([claim]))
    claims, problems = read_claims(plan_of(TINY), path)
    assert claims == [] and any(expected in problem for problem in problems), problems


def test_an_id_given_twice_is_named(tmp_path):
    path = tmp_path / "findings.yaml"
    path.write_text(yaml.safe_dump([CLAIM, CLAIM]))
    assert read_claims(plan_of(TINY), path)[1] == ["findings.yaml: claim 'c': id given twice"]


# --- what the run writes from them ----------------------------------------------------------------------------

def test_summary_interval_figures_and_findings_plot(tmp_path):
    from rrhf.report.summary import cpu_model, write_summary
    from rrhf.studies.findings.interval_figures import plot_findings, plot_table_intervals

    table = tmp_path / "table2.csv"
    pd.DataFrame({"policy": ["A", "A"], "setting": ["DP", "none"], "ppl": [20.0, 21.0], "ppl_ci95": [1.0, 2.0],
                  "reward": [2.71111, 2.0], "reward_ci95": [0.0995656, 0.2], "gold_reward": [0.7, 0.6],
                  "gold_reward_ci95": [0.01, 0.02], "replicates": [3, 3]}).to_csv(table, index=False)
    found = findings([synthetic_claim(tmp_path, 0.3, "real"), synthetic_claim(tmp_path, 0.0, "null")],
                     str(tmp_path / "findings.csv"))
    text = write_summary({"Table 2: the main comparison": str(table)}, str(tmp_path / "findings.csv"),
                         {"replicates": 3, "reseeded": ["models", "sampling", "training"],
                          "configfiles": ["config/config.yaml"]}, str(tmp_path / "summary.md"))
    assert f"- CPU: {cpu_model()}" in text and "replicates: 3 (re-seeded stages: models, sampling, training)" in text
    assert "| A | DP | 20.0 ± 1.0 | 2.71 ± 0.10 | 0.700 ± 0.010 | 3 |" in text
    assert "1 holds, 0 contradicted, 1 inconclusive of 2 claims, over 3 replicate(s)" in text
    for claim in found.itertuples():
        assert f"| {claim.id} | reward |" in text and f"| {claim.verdict} |" in text
    figures = []
    for attempt in range(2):
        out = tmp_path / f"intervals{attempt}.png"
        assert plot_table_intervals(str(table), "Table 2", str(out)) == ["reward", "gold_reward", "ppl"]
        plot_findings(str(tmp_path / "findings.csv"), "Findings", str(tmp_path / f"findings{attempt}.png"))
        figures.append((out.read_bytes(), (tmp_path / f"findings{attempt}.png").read_bytes()))
    assert figures[0] == figures[1] and figures[0][0].startswith(b"\x89PNG")  # the same bytes every time
    pd.DataFrame({"policy": ["A"], "setting": ["DP"], "reward": [1.0]}).to_csv(tmp_path / "one.csv", index=False)
    with pytest.raises(ValueError, match="no metric with an interval column"):
        plot_table_intervals(str(tmp_path / "one.csv"), "T", str(tmp_path / "x.png"))


def test_replicates_to_settle_an_inconclusive_claim():
    from rrhf.studies.findings.verdicts import replicates_to_settle

    # mean 2, sd 1: N = 3 gives 4.303 / sqrt(3) = 2.48 > 2; N = 4 gives 3.182 / 2 = 1.59 < 2.
    assert replicates_to_settle([1.0, 2.0, 3.0]) == 4
    assert replicates_to_settle([0.9, 1.0, 1.1]) == 2
    assert replicates_to_settle([1.0]) is None and replicates_to_settle([-1.0, 1.0]) is None
    assert replicates_to_settle([0.5, 0.5]) == 2


# --- one run: intervals over test prompts; claims against a bound; log-perplexity ------------------------------

def test_one_replicate_of_a_per_prompt_metric_is_judged_over_its_prompts(tmp_path):
    rng = np.random.default_rng(1)
    prompts = [f"p{i}" for i in range(64)]
    base = rng.normal(0.0, 1.0, 64)
    gain = base + 0.5 + rng.normal(0, 0.2, 64)
    files = [[generations(tmp_path / "row.parquet", gain, prompts), generations(tmp_path / "versus.parquet", base,
                                                                               prompts)]]
    claim = {**CLAIM, "row": "Alpaca DP", "versus": "Alpaca none", "files": files}
    result = findings([claim], str(tmp_path / "findings.csv")).iloc[0]
    differences = gain - base
    half = stats.t.ppf(0.975, 63) * differences.std(ddof=1) / np.sqrt(64)
    assert result["effect"] == pytest.approx(differences.mean())
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((differences.mean() - half,
                                                                    differences.mean() + half))
    assert result["verdict"] == "holds" and result["replicates"] == 1
    assert "over the 64 test prompts' paired differences" in result["note"]
    # A claim on a number per row (Table 5 accuracy, ppl) still has no interval from one run.
    assert verdict([0.7], "higher")["verdict"] == "inconclusive"


def test_a_claim_against_a_bound_compares_the_interval_with_it():
    assert verdict([0.10, 0.12, 0.08], "lower", than=0.2)["verdict"] == "holds"
    assert verdict([0.10, 0.12, 0.08], "lower")["verdict"] == "contradicted"
    result = verdict([0.18, 0.24, 0.21], "lower", than=0.2)
    assert result["verdict"] == "inconclusive" and result["note"] == "the interval contains 0.2"
    assert verdict([0.30, 0.32, 0.31], "lower", than=0.2)["note"] == "the interval excludes 0.2 on the other side"


def test_than_must_be_a_number(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump([{**CLAIM, "than": "a lot"}]))
    claims, problems = read_claims(plan_of(TINY), path)
    assert not claims and problems == ["claims.yaml: claim 'c': than 'a lot' is not a number (the value row - "
                                       "versus is claimed higher than)"]
    path.write_text(yaml.safe_dump([{**CLAIM, "metric": "log_ppl", "direction": "lower", "than": 0.2}]))
    claims, problems = read_claims(plan_of(TINY), path)
    assert not problems and claims[0].than == 0.2
    assert claims_for_rule(plan_of(TINY), claims)[0]["than"] == 0.2


def test_log_perplexity_is_per_reply_and_leaves_out_empty_replies(tmp_path):
    from rrhf.studies.findings.verdicts import row_value

    frame = pd.DataFrame({"prompt_id": ["a", "b", "c"], "nll": [6.0, 0.0, 3.0], "n_tokens": [3, 0, 1]})
    write_parquet(frame, tmp_path / "g.parquet", {})
    values = row_value(str(tmp_path / "g.parquet"), "log_ppl")
    assert values["a"] == 2.0 and values["c"] == 3.0 and np.isnan(values["b"])
    versus = pd.Series([1.0, 1.0, 1.0], index=["a", "b", "c"])
    assert replicate_effect(values, versus, "c", "log_ppl") == pytest.approx(1.5)  # (1 + 2) / 2: b left out
