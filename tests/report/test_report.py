"""The Snakemake report: its figures and pages (rrhf.report.figures, rrhf.report.pages), and the report of a real
run (the shared table_workdir fixture: Table 6 reduced to one row) rendered in headless Chromium."""

import base64
import json
import math
import re
import time

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from rrhf.io import write_parquet
from rrhf.report.figures import (
    metric_columns,
    plot_evaluation_rewards,
    plot_training_curves,
    plot_training_rewards,
)
from rrhf.report.pages import generation_samples, table_page
from rrhf.scoring.training_sets import training_set_stats
from rrhf.statistics import spearman
from workflow_helpers import chromium, copy_of, headless_chromium, run_snakemake

PNG = b"\x89PNG\r\n\x1a\n"


def train_log(folder, with_reward=True):
    """A train_log.parquet like RRHF's: 9 steps, a reward logged every 3rd step (NaN between)."""
    steps = np.arange(1, 10)
    log = pd.DataFrame({"loss": 3.0 / steps, "rank_loss": 1.0 / steps, "ft_loss": 2.0 / steps, "step": steps,
                        "epoch": steps / 9, "lr": np.full(9, 1e-4)})
    if with_reward:
        log["reward"] = [np.nan, np.nan, 1.0, np.nan, np.nan, 1.5, np.nan, np.nan, 2.0]
    write_parquet(log, folder / "train_log.parquet", {"stage": "test"})
    return log


def test_training_curves_plot_every_metric_reward_first(tmp_path):
    log = train_log(tmp_path)
    assert metric_columns(log) == ["reward", "loss", "rank_loss", "ft_loss", "lr"]  # step and epoch are the axis
    plot_training_curves(str(tmp_path), "title", str(tmp_path / "a.png"), log_path=str(tmp_path / "a.log"))
    plot_training_curves(str(tmp_path), "title", str(tmp_path / "b.png"))
    data = (tmp_path / "a.png").read_bytes()
    assert data.startswith(PNG) and len(data) > 20000
    assert data == (tmp_path / "b.png").read_bytes()  # deterministic
    assert b"matplotlib" not in data  # no Software entry (its version) in the PNG's metadata
    assert "5 metrics (reward, loss, rank_loss, ft_loss, lr) over 9 logged steps" in (tmp_path / "a.log").read_text()


def test_training_curves_of_a_log_without_reward_or_metrics(tmp_path):
    train_log(tmp_path, with_reward=False)
    plot_training_curves(str(tmp_path), "title", str(tmp_path / "curve.png"))
    assert (tmp_path / "curve.png").read_bytes().startswith(PNG)
    write_parquet(pd.DataFrame({"step": [1, 2]}), tmp_path / "train_log.parquet", {"stage": "test"})
    with pytest.raises(ValueError, match="train_log.parquet: no numeric metric column"):
        plot_training_curves(str(tmp_path), "title", str(tmp_path / "none.png"))


def scored(seed, prompts=6, per_prompt=4):
    rewards = np.random.default_rng(seed).normal(size=prompts * per_prompt)
    return pd.DataFrame({"prompt_id": np.repeat([f"p{i}" for i in range(prompts)], per_prompt), "reward": rewards})


def test_training_rewards_mark_table6_statistics(tmp_path):
    write_parquet(scored(0), tmp_path / "DP.parquet", {"stage": "test"})
    (tmp_path / "OP-2").mkdir()
    write_parquet(scored(1), tmp_path / "OP-2" / "online_samples.parquet", {"stage": "test"})
    rows = [{"label": "Alpaca DP", "path": str(tmp_path / "DP.parquet"), "kind": "scored"},
            {"label": "Alpaca OP-2", "path": str(tmp_path / "OP-2"), "kind": "online"}]
    plot_training_rewards(rows, "Table 6", str(tmp_path / "train.png"), log_path=str(tmp_path / "train.log"))
    assert (tmp_path / "train.png").read_bytes().startswith(PNG)
    stats = training_set_stats(scored(0))
    log = (tmp_path / "train.log").read_text()
    assert (f"Alpaca DP ({tmp_path / 'DP.parquet'}): 24 rewards: mean {stats['train_reward_mean']:.3g}, "
            f"std {stats['train_reward_std']:.3g}, max {stats['train_reward_max']:.3g}") in log


def test_evaluation_rewards_against_gold_and_without(tmp_path):
    rng = np.random.default_rng(0)
    reward = rng.normal(size=50)
    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in range(50)], "reward": reward,
                          "gold_reward": reward + rng.normal(size=50)})
    write_parquet(frame, tmp_path / "gold.parquet", {"stage": "test"})
    write_parquet(frame.drop(columns="gold_reward"), tmp_path / "real.parquet", {"stage": "test"})
    summary = plot_evaluation_rewards([{"label": "with gold", "path": str(tmp_path / "gold.parquet")},
                                       {"label": "real data", "path": str(tmp_path / "real.parquet")}],
                                      "Table 2", str(tmp_path / "eval.png"))
    expected = frame["reward"].rank().corr(frame["gold_reward"].rank())
    assert summary == {"with gold": {"n": 50, "spearman": pytest.approx(expected)},
                       "real data": {"n": 50, "spearman": None}}
    assert (tmp_path / "eval.png").read_bytes().startswith(PNG)
    assert math.isnan(spearman(pd.Series([1.0, 1.0]), pd.Series([1.0, 2.0])))


def test_table_page_shows_every_cell(tmp_path):
    (tmp_path / "table6.csv").write_text("policy,setting,reward,train_reward_mean\n"
                                         "tiny <Alpaca>,DP,2.71234,1.5\ntiny <Alpaca>,OP-2,2.75,\n")
    table_page(str(tmp_path / "table6.csv"), "Table 6: ablation", "a note", str(tmp_path / "table6.html"))
    page = (tmp_path / "table6.html").read_text()
    assert "<title>Table 6: ablation</title>" in page and "a note" in page
    assert '<td class="text">tiny &lt;Alpaca&gt;</td>' in page
    assert '<td class="number">2.71234</td>' in page and "&ndash;" in page  # the empty cell


def test_generation_samples_show_prompts_every_row_answered(tmp_path):
    files = []
    for name, ids in (("a", ["p3", "p1", "p2", "p4"]), ("b", ["p4", "p2", "p1"])):
        frame = pd.DataFrame({"prompt_id": ids, "prompt": [f"Human: question {i}?" for i in ids],
                              "response": [f"{name} answers {i} <b>" for i in ids], "reward": 1.25,
                              "gold_reward": 0.5})
        write_parquet(frame, tmp_path / f"{name}.parquet", {"stage": "test"})
        files.append(str(tmp_path / f"{name}.parquet"))
    rows = [{"policy": "P", "setting": "DP", "path": files[0]}, {"policy": "P", "setting": "BP", "path": files[1]}]
    shown = generation_samples(rows, "Table 6: samples", 2, str(tmp_path / "samples.html"))
    assert shown == ["p1", "p2"]  # in the first file's order, p3 is not answered by b
    page = (tmp_path / "samples.html").read_text()
    assert "Human: question p1?" in page and "b answers p2 &lt;b&gt;" in page and "p3" not in page
    assert page.count("<td class=\"number\">1.250</td>") == 4 and "gold reward" in page


# The report of the shared fixture's run: what Table 6 (one row, Alpaca DP) adds to it.
REPORT_TARGETS = ["results/table6.csv", "results/report/table6.html", "results/figures/loss_curve_instruct_DP.png",
                  "results/figures/train_rewards_table6.png", "results/figures/eval_rewards_table6.png",
                  "results/report/generations_table6.html"]


@pytest.fixture(scope="module")
def report(table_workdir, tmp_path_factory):
    """The report items of Table 6 built in a copy of the shared fixture's folder, and results/report.html of
    them."""
    workdir, overrides = table_workdir
    workdir = copy_of(workdir, tmp_path_factory, "report")
    start = time.monotonic()
    run_snakemake(workdir, *REPORT_TARGETS, overrides=overrides)
    built = time.monotonic()
    path = workdir / "results/report.html"
    run_snakemake(workdir, "--report", str(path), *REPORT_TARGETS, overrides=overrides)
    print(f"report items {built - start:.1f} s, report {time.monotonic() - built:.1f} s, {path.stat().st_size} bytes")
    return workdir, path


def embedded(html, script_id):
    """The JSON of one of the report's <script id=...> blocks."""
    return json.loads(re.search(rf'<script id="{script_id}">\s*var \w+ = (.*?);\s*</script>', html, re.S).group(1))


@pytest.mark.workflow
def test_report_has_every_item_with_its_caption(report):
    workdir, path = report
    html = path.read_text()
    results = embedded(html, "results")
    assert sorted(results) == sorted(REPORT_TARGETS)
    assert embedded(html, "categories") == {
        "1. Tables": {"Other": ["results/table6.csv", "results/report/table6.html"]},
        "2. Training curves": {"tiny-instruct (Alpaca role)": ["results/figures/loss_curve_instruct_DP.png"]},
        "3. Rewards": {"Other": ["results/figures/eval_rewards_table6.png",
                                "results/figures/train_rewards_table6.png"]},
        "4. Generations": {"Other": ["results/report/generations_table6.html"]}}
    for target, item in results.items():
        assert "overrides.yaml" in item["caption"], target  # every caption names the config files
        data = base64.b64decode(item["data_uri"].split("base64,", 1)[1])
        assert data == (workdir / target).read_bytes(), target  # embedded: one self-contained file
    assert "Training config" in results["results/figures/loss_curve_instruct_DP.png"]["caption"]
    assert not re.search(r'(src|href)="https?://', html)  # nothing loaded from the network


@pytest.mark.workflow
def test_report_renders_in_chromium(report, tmp_path):
    browser = chromium()
    workdir, path = report
    screenshot = tmp_path / "report.png"
    page = headless_chromium(browser, path.as_uri(), "--dump-dom", f"--screenshot={screenshot}",
                             "--window-size=1400,1000")
    assert page.returncode == 0 and screenshot.exists(), page.stderr[-3000:]
    rendered = re.sub(r"<script\b.*?</script>", "", page.stdout, flags=re.S)  # what the page's JavaScript drew
    assert "2. Training curves" in rendered and "4. Generations" in rendered  # the menu of categories
    table = pd.read_csv(workdir / "results/table6.csv", dtype=str, keep_default_na=False)
    for cell in [*table.columns, *table.iloc[0]]:  # Table 6, rendered on the front page
        assert f">{cell}<" in rendered, cell
    pixels = matplotlib.image.imread(screenshot)
    assert screenshot.read_bytes().startswith(PNG) and pixels.shape[:2] == (1000, 1400)
    assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50  # not blank


def test_paired_difference_of_two_evaluations(tmp_path):
    from rrhf.studies.findings.verdicts import paired_difference

    for name, rewards in (("a", [1.0, 2.0, 4.0]), ("b", [0.0, 1.5, 2.5])):
        (tmp_path / name).mkdir()
        frame = pd.DataFrame({"prompt_id": ["x", "y", "z"], "reward": rewards})
        frame.to_parquet(tmp_path / name / "generations.parquet")
    difference, sems = paired_difference(tmp_path / "a", tmp_path / "b", "reward")
    # differences 1, 0.5, 1.5: mean 1, sample std 0.5, standard error 0.5 / sqrt(3)
    assert difference == pytest.approx(1.0) and sems == pytest.approx(1.0 / (0.5 / math.sqrt(3)))
    assert paired_difference(tmp_path / "a", tmp_path / "a", "reward") == (0.0, 0.0)
