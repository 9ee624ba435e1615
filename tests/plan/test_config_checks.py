"""rrhf.config.files and rrhf.plan.checks: config files, model paths, sampler settings and the device, checked
before any job."""

import copy
import json

import pytest
import yaml

from rrhf.config.files import config_file_problem
from rrhf.models.sources import is_hub_id, model_source_problem
from rrhf.plan.checks import device_problems, model_path_problems, sampler_problems
from workflow_helpers import REPO

TINY = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def tiny(edit=None):
    config = copy.deepcopy(TINY)
    if edit:
        edit(config)
    return config


@pytest.mark.parametrize("text, expected", [
    ("", ": the config file is empty"),
    ("# only a comment\n", ": the config file is empty"),
    ("- a\n- b\n", ":1: the top level of a config file must be a mapping of keys (key: value), not a list"),
    ("offline: true\ndata:\n  dataset: x\n\ttrain_prompts: 3\n", ":4:1: not valid YAML: found character '\\t'"),
    ("data:\n  dataset: x\n   train_prompts: 3\n", ":3:17: not valid YAML: mapping values are not allowed here"),
    ("a: [1, 2\nb: 3\n", ":2:2: not valid YAML: expected ',' or ']'"),
    ("data:\n  dataset: a\n  train_prompts: 3\n  train_prompts: 5\n",
     ":4:3: the key 'train_prompts' appears again (first on line 3)"),
    ("data: {dataset: a}\nmodels: {}\ndata: {dataset: b}\n", ":3:1: the key 'data' appears again (first on line 1)"),
])
def test_config_file_problems_name_the_file_and_line(tmp_path, text, expected):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert config_file_problem(path).startswith(f"{path}{expected}")


def test_good_config_files_pass(tmp_path):
    assert config_file_problem(REPO / "config" / "config.yaml") is None
    assert config_file_problem(REPO / "config" / "paper.yaml") is None
    (tmp_path / "c.json").write_text(json.dumps({"data": {"dataset": "x"}}, indent="\t"))
    assert config_file_problem(tmp_path / "c.json") is None
    (tmp_path / "d.json").write_text('{"data": 1,\n "data": 2}')
    assert "appear twice" in config_file_problem(tmp_path / "d.json")
    (tmp_path / "e.json").write_text('{"data": 1,\n "x": }')
    assert config_file_problem(tmp_path / "e.json").startswith(f"{tmp_path / 'e.json'}:2:")


@pytest.mark.parametrize("path, hub", [
    ("gpt2", True), ("huggyllama/llama-7b", True), ("Dahoas/gptj-rm-static@676bfd4d", True),
    ("./gpt2", False), ("../models/x", False), ("/abs/model", False), ("~/models/x", False),
    ("results/models/base/BP", False), ("x/hf_ckpt.pt", False), ("org/name/", False), ("a b", False),
])
def test_hub_ids_and_local_paths(path, hub):
    assert is_hub_id(path) is hub


def test_an_existing_folder_is_local_even_if_it_reads_like_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpt2").mkdir()
    assert not is_hub_id("gpt2")
    assert "not a transformers model folder: it has no config.json" in model_source_problem("gpt2")


def test_model_source_problems(tmp_path, tiny_lm_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert model_source_problem(str(tiny_lm_dir)) is None
    assert "does not exist (looked for " + str(tmp_path / "missing") in model_source_problem("./missing")
    (tmp_path / "empty").mkdir()
    problem = model_source_problem(str(tmp_path / "empty"))
    assert "no config.json and no tokenizer and no weights (it holds nothing)" in problem
    (tmp_path / "weights_only").mkdir()
    (tmp_path / "weights_only" / "config.json").write_text("{}")
    (tmp_path / "weights_only" / "model.safetensors").write_bytes(b"")
    assert "it has no tokenizer" in model_source_problem("weights_only")
    assert model_source_problem("weights_only", "tokenizer") is not None
    assert "is a file" in model_source_problem("weights_only/config.json")
    # A backbone needs config and tokenizer only; a value-head checkpoint is a file or a folder with hf_ckpt.pt.
    assert model_source_problem(str(tiny_lm_dir), "backbone") is None
    assert "without hf_ckpt.pt" in model_source_problem("empty", "value_head_checkpoint")
    assert model_source_problem("weights_only/model.safetensors", "value_head_checkpoint") is None
    # Hub ids: looked up in the cache only when offline.
    assert model_source_problem("org/never-downloaded", offline=False) is None
    problem = model_source_problem("org/never-downloaded", offline=True)
    assert "not in the Hugging Face cache" in problem and "offline" in problem


def test_model_path_problems_name_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def edit(config):
        config["models"]["base"] = {"display_name": "b", "path": "./no/such/model"}
        config["models"]["evaluation_lm"] = {"display_name": "e", "path": "org/not-cached"}
        config["models"]["unused"] = {"display_name": "u", "path": "./also/missing"}  # no role names it
        config["models"]["reward"] = {"display_name": "r", "path": "rm/", "format": "value_head_checkpoint",
                                      "backbone": "./backbone"}

    problems = model_path_problems(tiny(edit))
    assert [p.split(":")[0] for p in problems] == [
        "models.base.path", "models.evaluation_lm.path", "models.reward.path", "models.reward.backbone"]
    assert str(tmp_path / "no" / "such" / "model") in problems[0]
    assert model_path_problems(tiny()) == []  # built models have no path


def test_sampler_problems():
    assert sampler_problems(tiny()) == []

    def edit(config):
        config["sampling"]["samplers"]["diverse_beam"].update(num_beams=4, num_beam_groups=3)
        config["sampling"]["samplers"]["beam"].update(num_responses=6, num_beams=4)

    problems = sampler_problems(tiny(edit))
    assert problems[0].startswith("sampling.samplers.beam.num_responses: 6 responses")
    assert problems[1].startswith("sampling.samplers.diverse_beam.num_beams: 4 beams cannot be split into "
                                  "num_beam_groups 3")
    # A sampler no setting uses is not checked.
    unused = tiny(lambda c: (edit(c), c.update(settings={"P": {"sampler": None, "provided": True}}),
                             c["resampling"].update(setting="P")))
    assert sampler_problems(unused) == []


def test_device_problems():
    assert device_problems(tiny()) == []
    assert device_problems(tiny(lambda c: c.update(device="cuda")), cuda_available=True) == []
    cuda = device_problems(tiny(lambda c: c.update(device="cuda:1")), cuda_available=False)
    assert len(cuda) == 1 and cuda[0].startswith("device: 'cuda:1', but this machine has no CUDA GPU")
    # Jobs that ask for a GPU run where they get one (a cluster's GPU nodes): not checked here.
    cluster = tiny(lambda c: (c.update(device="cuda"), c["resources"]["rules"].update(train_rrhf={"gpu": 1})))
    assert device_problems(cluster, cuda_available=False) == []
    assert device_problems(tiny(lambda c: c.update(device="gpu")))[0].startswith("device: 'gpu' is not a device")


def test_the_command_line_finds_the_line(tmp_path, capsys):
    from rrhf.config.files import main

    (tmp_path / "tab.yaml").write_text("data:\n\tdataset: x\n")
    assert main([str(tmp_path / "tab.yaml"), str(REPO / "config" / "config.yaml")]) == 1
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'tab.yaml'}:2:1: not valid YAML")
    assert main([str(REPO / "config" / "config.yaml")]) == 0
