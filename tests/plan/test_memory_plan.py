"""GPU memory planned before submission (rrhf.plan.memory, rrhf.plan.memory_plan): the paper config fits its 80 GB
GPUs, a rule that cannot fit is refused by name with its figures, sharding and loading are counted as they run, and
the sizes and activation constants agree with real models."""

import copy
import os
import subprocess

import pytest
import torch
import yaml
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from rrhf.config.schema import fill_defaults
from rrhf.plan.memory import BLOCK_ACTIVATIONS, GIB, block_activations, memory_problems, memory_table
from rrhf.plan.memory_plan import docs_block, memory_plan, planned_gpu_memory
from rrhf.plan.model_facts import facts_of
from rrhf.plan.plan import Plan
from rrhf.studies.registry import STUDIES
from workflow_helpers import REPO, SNAKEMAKE

PAPER = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
TINY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def benchmark(name: str):
    """The script benchmarks/{name}.py as a module (its functions are what the test checks)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plan_of(config: dict, change=None) -> Plan:
    config = copy.deepcopy(config)
    if change:
        change(config)
    return Plan(fill_defaults(config), REPO, STUDIES)


def by_rule(plan: Plan):
    return {estimate.rule: estimate for estimate in memory_plan(plan)}


def test_the_paper_config_fits_every_gpu_rule_in_80_gib():
    plan = plan_of(PAPER)
    estimates = by_rule(plan)
    assert {"sample_responses", "score_samples", "train_sft", "train_rrhf", "train_online_rrhf", "train_ppo",
            "train_preference_method", "evaluate_policy", "evaluate_best_of_n"} <= set(estimates)
    assert memory_problems(plan, list(estimates.values())) == []
    assert all(e.needed <= 80 * GIB for e in estimates.values())
    rrhf = estimates["train_rrhf"]
    assert rrhf.layout == "FSDP over 8" and "reward curve" in rrhf.case  # Figure 3's monitor is on
    # 7B in float32 with AdamW, sharded over 8: 16 bytes a parameter / 8
    assert sum(rrhf.parts[k] for k in ("weights", "gradients", "optimizer")) == pytest.approx(
        16 * 6_738_423_808 / 8, rel=1e-6)
    table = memory_table(plan, list(estimates.values()))
    assert table.splitlines()[0].split()[:3] == ["rule", "GPUs", "layout"] and "train_online_rrhf" in table


def test_online_rrhf_of_a_7b_policy_on_one_gpu_without_lora_is_refused_by_name():
    def one_gpu(config):
        config["resources"]["rules"]["train_online_rrhf"]["gpu"] = 1

    plan = plan_of(PAPER, one_gpu)
    problems = memory_problems(plan, memory_plan(plan))
    assert len(problems) == 1 and problems[0].startswith("train_online_rrhf: needs ")
    needed = float(problems[0].split("needs ")[1].split(" GiB")[0])
    assert needed > 150 and "optimizer 50.2" in problems[0] and "gpu_memory_gib is 80" in problems[0]
    with pytest.raises(ValueError, match="train_online_rrhf: needs"):
        planned_gpu_memory(plan)

    def one_gpu_with_lora(config):  # LoRA cannot run under FSDP: one plain process
        one_gpu(config)
        config["accelerate_config"] = None
        config["rrhf"]["training"]["lora"] = {"r": 16}
        for rule in ("train_sft", "train_rrhf", "train_reward_model", "train_preference_method"):
            config["resources"]["rules"][rule]["gpu"] = 1

    plan = plan_of(PAPER, one_gpu_with_lora)
    online = by_rule(plan)["train_online_rrhf"]
    assert online.layout == "1 process" and online.parts["optimizer"] < GIB
    assert "train_online_rrhf" not in " ".join(memory_problems(plan, [online]))


def test_fsdp_divides_the_training_state_and_ddp_copies_it():
    def gpus(count, accelerate="envs/accelerate/fsdp_full_shard.yaml"):
        def change(config):
            config["accelerate_config"] = accelerate
            config["resources"]["rules"]["train_sft"]["gpu"] = count
        return by_rule(plan_of(PAPER, change))["train_sft"]

    eight, four = gpus(8), gpus(4)
    assert eight.parts["optimizer"] * 2 == pytest.approx(four.parts["optimizer"], rel=1e-6)
    assert eight.parts["activations"] == four.parts["activations"]  # each process runs its own batch
    ddp = gpus(8, "envs/accelerate/ddp.yaml")
    assert ddp.layout == "DDP x 8" and ddp.parts["weights"] == 8 * eight.parts["weights"]
    offload = gpus(1, "envs/accelerate/fsdp_cpu_offload.yaml")
    assert offload.layout == "FSDP over 1, offload" and offload.parts["optimizer"] == 0
    assert offload.host > 16 * 6.7e9  # weights, gradients and AdamW state live in host memory


def test_host_memory_at_load_is_one_copy_under_fsdp_and_one_per_process_otherwise():
    fsdp = by_rule(plan_of(PAPER))["train_sft"]
    assert fsdp.host < 64 * GIB  # one float32 copy of 7B on the first process, the others on the meta device

    def ddp(config):
        config["accelerate_config"] = "envs/accelerate/ddp.yaml"
        config["resources"]["rules"]["train_sft"]["mem_mb"] = 128000

    plan = plan_of(PAPER, ddp)
    estimates = memory_plan(plan)
    assert next(e for e in estimates if e.rule == "train_sft").host > 8 * 4 * 6.7e9  # every process its own copy
    problems = memory_problems(plan, estimates)
    assert any(p.startswith("train_sft: needs") and "host memory while loading" in p and
               "resources.rules.train_sft.mem_mb" in p for p in problems)


def test_the_tiny_default_asks_for_no_gpu_and_plans_nothing():
    assert planned_gpu_memory(plan_of(TINY)) is None


def test_sizes_are_read_from_a_model_folder(tiny_lm_dir, tiny_reward_dir):
    plan = plan_of(TINY)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    facts = facts_of(plan, str(tiny_lm_dir))
    assert facts.parameters == model.num_parameters()
    assert facts.layers == model.config.n_layer and facts.hidden == model.config.n_embd
    assert facts.block_parameters == sum(p.numel() for p in model.transformer.h[0].parameters())
    assert facts.kv_bytes_per_token(2) == 2 * model.config.n_layer * model.config.n_embd * 2
    built = facts_of(plan, "base")  # the tiny default's pre-training build: its recipe's shape
    assert built.layers == TINY["models"]["base"]["build"]["architecture"]["n_layer"]


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "bf16 autocast"])
def test_block_activation_constants_match_what_autograd_keeps(autocast, tmp_path):
    """The plan's per-token activation bytes, against a real LLaMA-style model's saved tensors (the blocks of a
    three-block model less those of a one-block model)."""
    def llama(layers):
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=352,
                                            num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2))

    saved_for_backward = benchmark("memory_estimates").saved_for_backward
    three = llama(3)
    three.save_pretrained(tmp_path)
    measured = saved_for_backward(three, 4, 96, autocast) - saved_for_backward(llama(1), 4, 96, autocast)
    planned = block_activations(facts_of(plan_of(TINY), str(tmp_path)), 4 * 96, 2 if autocast else 4, False, 2)
    assert 0.85 <= measured / planned <= 1.1, (measured, planned, BLOCK_ACTIVATIONS)


def dry_run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(SNAKEMAKE), "--profile", "slurm", "-n", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)


def test_the_paper_dry_run_prints_the_plan_and_an_op_32_on_one_gpu_is_refused(tmp_path):
    result = dry_run("results/table6.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GPU memory per process, planned from the config" in result.stdout
    assert any(line.startswith("train_online_rrhf ") and " FSDP over 8 " in line for line in result.stdout.splitlines())
    config = copy.deepcopy(PAPER)
    config["resources"]["rules"]["train_online_rrhf"]["gpu"] = 1
    (tmp_path / "one_gpu.yaml").write_text(yaml.safe_dump(config))
    refused = dry_run(f"--configfile={tmp_path / 'one_gpu.yaml'}", "results/table6.csv")
    assert refused.returncode != 0
    assert "train_online_rrhf: needs" in refused.stdout + refused.stderr
    assert "Job stats" not in refused.stdout  # stopped before planning any job


def test_docs_hold_the_paper_configs_plan():
    plan = plan_of(PAPER)
    assert docs_block(memory_table(plan, memory_plan(plan))) in (REPO / "docs" / "cluster.md").read_text(), \
        "docs/cluster.md's memory plan is out of date: python -m rrhf.plan.memory_plan config/paper.yaml --write"




def test_the_gpu_check_reads_each_jobs_peak_and_compares_it_with_the_plan(tmp_path):
    """make gpu-check's config plans FSDP2 in one process for the launched trainers; a peak each job logs at exit
    (rrhf.io) is read back per rule and set beside that rule's plan."""
    from rrhf.io import GPU_PEAK_MESSAGE

    check = benchmark("gpu_check")
    plan = plan_of(check.layered_config())
    estimates = by_rule(plan)
    assert memory_problems(plan, list(estimates.values())) == []
    assert {estimates[r].layout for r in ("train_rrhf", "train_online_rrhf", "train_sft")} == {"FSDP over 1"}
    assert estimates["train_ppo"].layout == "1 process"
    planned = estimates["train_rrhf"].allocated / GIB
    summary = ("Building DAG of jobs...\noutput_file\tdate\trule\tlog-file(s)\tstatus\n"
               "results/models/instruct/DP\tMon\ttrain_rrhf\tlogs/train_rrhf/instruct_DP.log\tok\n"
               "results/models/instruct/PPO\tMon\ttrain_ppo\tlogs/ppo/PPO.log\tok\n"
               "results/scored/instruct/DP.parquet\tMon\tassemble_training_set\t-\tok\n")
    rules = check.log_rules(summary)
    assert rules == {"logs/train_rrhf/instruct_DP.log": "train_rrhf", "logs/ppo/PPO.log": "train_ppo"}
    for log, peak in (("logs/train_rrhf/instruct_DP.log", planned * 0.5),
                      ("logs/ppo/PPO.log", estimates["train_ppo"].allocated / GIB * 2)):
        (tmp_path / log).parent.mkdir(parents=True)
        (tmp_path / log).write_text("INFO started\nINFO " + GPU_PEAK_MESSAGE % (peak, peak + 0.1) + "\n")
    peaks = check.measured_peaks(tmp_path, rules)
    assert peaks["train_rrhf"] == pytest.approx(planned * 0.5, abs=1e-3)
    table, over = check.comparison(plan, peaks)
    assert over == ["train_ppo"]  # its peak is twice its plan
    row = next(line for line in table.splitlines() if line.startswith("train_rrhf "))
    assert row.split()[-1] == "0.50" and "FSDP over 1" in row
    assert "not run" in next(line for line in table.splitlines() if line.startswith("sample_responses "))


def test_a_job_logs_its_peak_gpu_memory_only_where_it_used_cuda(tmp_path):
    import rrhf.io

    logger = rrhf.io.setup_logging(tmp_path / "job.log")
    rrhf.io._log_gpu_peak()  # what runs at exit: nothing on a machine without CUDA
    for handler in logger.handlers:
        handler.flush()
    used = torch.cuda.is_available() and torch.cuda.is_initialized()
    assert ("peak GPU memory" in (tmp_path / "job.log").read_text()) == used


def test_counted_sizes_are_kept_on_disk_by_the_configs_contents(tmp_path, monkeypatch, tiny_lm_dir):
    """Counting imports torch and transformers; the counts are kept under $XDG_CACHE_HOME, so that Snakemake's next
    start needs neither, and a damaged file is counted again."""
    import json

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    plan = plan_of(TINY)
    first = facts_of(plan, str(tiny_lm_dir))
    files = list((tmp_path / "rrhf" / "model_facts").glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["parameters"] == first.parameters
    files[0].write_text("{damaged")
    assert facts_of(plan, str(tiny_lm_dir)) == first
    assert json.loads(files[0].read_text())["block_parameters"] == first.block_parameters
