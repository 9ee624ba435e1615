"""rrhf.plan without Snakemake: the setting grammar, table rows, paths, typed blocks and their schema defaults."""

import copy
import dataclasses
import re

import pytest
import yaml

from plan_helpers import NAMED, PAPER, TINY, tiny_plan
from rrhf.config.blocks import PPO, RRHF, TOP_LEVEL_BLOCKS, Block, Build, Lora, Resources, Sampling, Training
from rrhf.config.schema import block_defaults, fill_defaults, schema_at
from rrhf.plan.plan import Plan
from rrhf.plan.settings import IMPOSSIBLE_SETTING_PATTERN, names_pattern, parse_setting, setting_problem
from rrhf.plan.table_rows import entries, labelled_rows, read_table_rows, report_rows
from rrhf.studies.registry import STUDIES
from workflow_helpers import REPO

# --- the setting grammar --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, number, with_kl", [
    ("none", "none", None, False), ("PPO", "ppo", None, True), ("PPO-noKL", "ppo", None, False),
    ("DP", "named", None, False),
    ("BP-norank", "named", None, False), ("IP-1", "iterated", 1, False), ("IP-12", "iterated", 12, False),
    ("OP-32", "online", 32, False), ("OP-2+KL", "online", 2, True), ("best-of-4", "best_of_n", 4, False),
])
def test_setting_names_parse(name, kind, number, with_kl):
    setting = parse_setting(name, NAMED)
    assert (setting.kind, setting.number, setting.with_kl) == (kind, number, with_kl)
    assert setting.trains_with_rrhf == (kind in ("named", "iterated", "online"))
    assert setting_problem(name, NAMED) is None


@pytest.mark.parametrize("name, expected", [
    ("IP-0", "'IP-0': in IP-n, n is a whole number from 1, not '0'"),
    ("IP-01", "not '01'"),
    ("OP-x+KL", "'OP-x+KL': in OP-k and OP-k+KL, k is a whole number from 1, not 'x'"),
    ("best-of-0", "'best-of-0': in best-of-n, n is a whole number from 1, not '0'"),
    ("DPP", "'DPP' is not one of ['BP', 'BP-norank', 'DP'], none, PPO"),
])
def test_impossible_setting_names_say_why(name, expected):
    assert parse_setting(name, NAMED) is None
    assert expected in setting_problem(name, NAMED)


def test_the_impossible_setting_pattern_matches_only_impossible_names():
    path = re.compile(rf"results/eval/instruct/(?P<setting>{IMPOSSIBLE_SETTING_PATTERN})(?:[/.].*)?")
    for bad in ("IP-0", "IP-01", "OP-x", "OP-0+KL", "best-of-0", "best-of-two"):
        assert path.fullmatch(f"results/eval/instruct/{bad}/metrics.json"), bad
    for good in ("IP-1", "IP-10", "OP-2", "OP-2+KL", "best-of-4", "DP", "none", "PPO"):
        assert not path.fullmatch(f"results/eval/instruct/{good}/metrics.json"), good


def test_names_pattern_matches_exactly_the_names():
    pattern = re.compile(f"(?:{names_pattern(['BP', 'BP-norank'])})")
    assert pattern.fullmatch("BP-norank") and pattern.fullmatch("BP") and not pattern.fullmatch("BP-")
    assert not re.fullmatch(names_pattern([]), "")


# --- table rows -----------------------------------------------------------------------------------------------

def test_table_rows_are_read_once_and_renamed_by_table_settings():
    plan = tiny_plan()
    online = [row for row in plan.tables["table6"] if row.listed_setting.startswith("OP-")]
    assert [(row.listed_setting, row.setting) for row in online] == [("OP-32", "OP-2"), ("OP-32+KL", "OP-2+KL")]
    assert plan.table_problems == []
    assert labelled_rows(plan, "table7") == [
        {"model": "instruct", "policy": "tiny-instruct (Alpaca role)", "setting": "BP", "rank_weight": 1.0},
        {"model": "instruct", "policy": "tiny-instruct (Alpaca role)", "setting": "BP-norank", "rank_weight": 0.0}]


def test_table_entries_and_report_rows_share_one_reader():
    plan = tiny_plan()
    table2 = entries(plan, "table2", "metrics.json")
    assert table2[0] == ({"policy": "dataset", "setting": "good responses"},
                         "results/eval/dataset/chosen/metrics.json")
    assert table2[5] == ({"policy": "tiny-instruct (Alpaca role)", "setting": "best-of-4"},
                         "results/eval/instruct/best-of-4/metrics.json")
    table5 = entries(plan, "table5", "pair_accuracy.json")
    assert table5[0] == ({"policy": "tiny-reward (gptj-rm-static role)", "setting": "reward model"},
                         "results/eval/reward_model/pair_accuracy.json")
    rows = {row["label"]: row for row in report_rows(plan, "table6")}
    assert rows["Alpaca IP-1 (= DP)"]["generations"] == "results/eval/instruct/DP/generations.parquet"
    assert rows["Alpaca IP-1 (= DP)"]["training"] == ("results/scored/instruct/DP.parquet", "scored")
    assert rows["Alpaca OP-2+KL"]["training"] == ("results/models/instruct/OP-2+KL", "online")
    assert [row["label"] for row in report_rows(plan, "table2")][:2] == ["dataset: good responses",
                                                                         "dataset: bad responses"]


def test_a_tables_file_that_is_not_rows_is_named(tmp_path):
    path = tmp_path / "tables.yaml"
    path.write_text("table6:\n  - {policy: Alpaca, setting: DP, weight: 2}\ntable9: []\ntable7: {policy: Alpaca}\n")
    tables, problems = read_table_rows(path, {})
    assert "tables.yaml: table6 row 1: {'policy': 'Alpaca', 'setting': 'DP', 'weight': 2} is not a row" in problems[0]
    assert "unknown table 'table9'" in problems[1] and "table7 is a dict; expected a list" in problems[2]
    path.write_text("- table6\n")
    assert "expected a mapping of table name" in read_table_rows(path, {})[1][0]


# --- paths and blocks of a setting ----------------------------------------------------------------------------

def test_what_each_setting_trains_on_and_starts_from():
    plan = tiny_plan()
    assert plan.scored_file("instruct", "DP") == "results/scored/instruct/DP.parquet"
    assert plan.scored_file("instruct", "BP-norank") == "results/scored/instruct/BP.parquet"
    assert plan.scored_file("instruct", "IP-1") == "results/scored/instruct/DP.parquet"
    assert plan.scored_file("instruct", "IP-3") == "results/scored/instruct/IP-3.parquet"
    assert plan.scored_file("instruct", "OP-2+KL") is None
    assert plan.setting_parts("instruct", "IP-2") == {"sampled": "results/rewards/instruct/IP-2/diverse_beam.parquet",
                                                      "provided": "results/rewards/provided.parquet"}
    assert plan.setting_parts("base", "P") == {"provided": "results/rewards/provided.parquet"}
    assert plan.starting_model("instruct", "IP-3") == "results/models/instruct/IP-2"
    assert plan.starting_model("instruct", "IP-2") == "results/models/instruct/DP"
    assert plan.starting_model("instruct", "DP") == "resources/models/instruct"
    assert plan.evaluation_file("instruct", "IP-1", "metrics.json") == "results/eval/instruct/DP/metrics.json"
    assert plan.rrhf_for("BP-norank")["rank_weight"] == 0.0 and plan.rrhf_for("BP")["rank_weight"] == 1.0
    assert plan.online_for("OP-2+KL") == {"steps_per_sample": 2, "kl_coef": 0.01, "sampler": "diverse_beam"}
    assert plan.online_for("OP-2")["kl_coef"] == 0.0
    assert list(plan.sampling_for("top_p")["samplers"]) == ["top_p"]
    assert plan.prompt_subset("test") == {"limit": 256, "seed": 1234, "key": "data.test_prompts", "max_tokens": None}


def test_a_rules_own_resources_replace_the_defaults_key_by_key():
    # A rule's entry that gives only its cores keeps resources.gpu (the schema filled in gpu: 0 there before).
    plan = tiny_plan(lambda c: c["resources"].update(gpu=1, rules={"train_rrhf": {"cpus_per_task": 8}}))
    assert plan.rule_resources("train_rrhf") == {"gpu": 1, "cpus_per_task": 8, "mem_mb": 4000, "runtime": 60}
    assert plan.rule_resources("sample_responses")["cpus_per_task"] == 1


# --- typed blocks ---------------------------------------------------------------------------------------------

def block_classes():
    found, queue = set(), list(Block.__subclasses__())
    while queue:
        cls = queue.pop()
        found.add(cls)
        queue += cls.__subclasses__()
    return sorted(found, key=lambda cls: cls.__name__)


@pytest.mark.parametrize("cls", [cls for cls in block_classes() if cls.SCHEMA], ids=lambda cls: cls.__name__)
def test_each_block_has_the_schemas_keys_and_no_defaults_of_its_own(cls):
    schema = schema_at(cls.SCHEMA)
    fields = {field.name: field for field in dataclasses.fields(cls)}
    assert set(fields) == set(schema["properties"]), cls.__name__
    for name, field in fields.items():
        # Only a key that may be absent (no default, not required) has one here: None, absent.
        absent = "default" not in schema["properties"][name] and name not in schema.get("required", [])
        assert (field.default is not dataclasses.MISSING) == absent, (cls.__name__, name)
        assert field.default in (None, dataclasses.MISSING)


def test_every_key_of_the_schema_is_described_with_schema_keywords():
    # A description with a comma in a YAML flow mapping once split into a stray key and lost its end.
    keywords = {"type", "description", "default", "enum", "minimum", "maximum", "exclusiveMinimum", "items",
                "exclusiveMaximum", "minItems", "maxItems", "properties", "additionalProperties", "required", "oneOf",
                "anyOf", "not", "$ref", "minProperties", "propertyNames", "pattern", "uniqueItems"}
    found = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, subschema in node.get("properties", {}).items():
                if not isinstance(subschema, dict) or set(subschema) - keywords:
                    found.append(f"{path}.{name}")
                elif "$ref" not in subschema and "description" not in subschema:
                    found.append(f"{path}.{name} (no description)")
            for key, value in node.items():
                walk(value, f"{path}.{key}")

    walk(yaml.safe_load((REPO / "config" / "schema.yaml").read_text()), "")
    assert found == []


def test_blocks_are_built_whole_and_refuse_unknown_or_missing_keys():
    rrhf = RRHF.from_config(fill_defaults(copy.deepcopy(TINY))["rrhf"])
    assert rrhf.training.seed == 42 and rrhf.reward_during_training.every_steps == 16 and rrhf.ft_reduction == "sum"
    with pytest.raises(ValueError, match=r"rrhf: unknown key\(s\) \['rank_wieght'\]"):
        RRHF.from_config({**rrhf.as_config(), "rank_wieght": 2})
    partial = rrhf.as_config()
    del partial["length_penalty"]
    with pytest.raises(ValueError, match=r"rrhf: missing key\(s\) \['length_penalty'\]"):
        RRHF.from_config(partial)
    assert RRHF.coerce(rrhf) is rrhf and RRHF.coerce(rrhf.as_config()) == rrhf


def test_with_defaults_takes_the_schemas_defaults_and_checks_values():
    training = Training.with_defaults({"learning_rate": 0.1})
    assert training.learning_rate == 0.1 and training.max_length == 192 and training.lora is None
    assert Training.with_defaults({"lora": {"r": 4}}).lora == Lora(r=4, alpha=32, dropout=0.05, target_modules=None)
    with pytest.raises(ValueError, match=r"\$defs/training.lr_schedule: 'cosine' is not one of"):
        Training.with_defaults({"lr_schedule": "cosine"})
    assert PPO.with_defaults().kl.controller == "adaptive" and Sampling.with_defaults().sampler("beam").num_beams == 4
    assert Build.with_defaults({"kind": "tokenizer", "dataset": "d"}).vocab_size == 1024


def test_resources_for_a_rule():
    resources = Resources.with_defaults({"gpu": 2, "rules": {"a": {"mem_mb": 100}}})
    assert resources.for_rule("a") == {"gpu": 2, "cpus_per_task": 1, "mem_mb": 100, "runtime": 60}


@pytest.mark.parametrize("config", [TINY, PAPER], ids=["config.yaml", "paper.yaml"])
def test_the_plans_defaults_are_snakemakes(config):
    from snakemake.utils import validate

    ours, snakemakes = copy.deepcopy(config), copy.deepcopy(config)
    fill_defaults(ours)
    validate(snakemakes, str(REPO / "config" / "schema.yaml"), set_default=True)
    assert ours == snakemakes
    for key, cls in TOP_LEVEL_BLOCKS.items():
        assert cls.from_config(ours[key]).as_config() == block_defaults(cls.SCHEMA, ours[key])


def test_the_paper_config_makes_a_plan_with_every_block():
    plan = Plan(fill_defaults(copy.deepcopy(PAPER)), REPO, STUDIES)
    assert plan.rrhf.training.epochs == 3 and plan.ppo.training.learning_rate == 8e-6
    assert plan.rule_resources("train_rrhf")["gpu"] == 8


# --- each check, without Snakemake (tests/workflow/test_config_validation.py runs them through a dry run) ----

def problems_of(edit, rule_names=None):
    from rrhf.plan.checks import plan_problems, rule_name_problems

    plan = tiny_plan(edit)
    problems = plan_problems(plan) + plan.study_problems()
    return problems + (rule_name_problems(plan, rule_names) if rule_names else [])


def test_the_tiny_and_paper_configs_have_no_problems():
    from rrhf.plan.checks import plan_problems

    assert problems_of(None, ["train_rrhf", "pretrain_lm", "train_reward_model"]) == []
    paper = Plan(fill_defaults(copy.deepcopy(PAPER)), REPO, STUDIES)
    # The paper's models are hub ids that this offline machine has not cached; nothing else is wrong.
    problems = plan_problems(paper) + paper.study_problems()
    assert all(problem.startswith("models.") and "Hugging Face cache" in problem for problem in problems)


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["rrhf"]["training"].update(learning_rate=float("nan")),
     "rrhf.training.learning_rate: nan is not a finite number"),
    (lambda c: c["ppo"]["kl"].update(target=float("inf")), "ppo.kl.target: inf is not a finite number"),
    (lambda c: c["models"]["base"]["build"]["training"].update(adam_betas=[0.9, float("nan")]),
     "models.base.build.training.adam_betas[1]: nan is not a finite number"),
    (lambda c: c.update(shards=3), "shards: 3 shards, but 256 training prompts in generation batches of "
                                   "sampling.batch_size 128 make 2 batch(es)"),
    (lambda c: c["resources"]["rules"].update(train_rrhf={"gpu": 40}),
     "rrhf.training.batch_size: 256 training prompts make 32 batch(es) of 8, fewer than the 40 processes"),
    (lambda c: c["resources"]["rules"].update(train_online_rrhf={"gpu": 40}),
     "rrhf.training.batch_size: 256 training prompts make 32 batch(es) of 8, fewer than the 40 processes of "
     "train_online_rrhf"),
    (lambda c: c["ppo"]["generation"].update(max_new_tokens=192),
     "ppo.training.max_length must exceed ppo.generation.max_new_tokens, as the prompt keeps the difference: "
     "ppo.training.max_length (192) must exceed 192"),
    (lambda c: c["rrhf"]["training"].update(lora={"r": 2}) or c.update(
        accelerate_config="envs/accelerate/fsdp_cpu_offload.yaml"), "rrhf.training.lora: LoRA with FSDP"),
    (lambda c: c["settings"].update(X={"training_set": "BP-norank"}),
     "settings.X.training_set: 'BP-norank' is not one of"),
    (lambda c: c["table_settings"].update({"OP-32": "best-of-2"}), "table_settings.OP-32: 'best-of-2' is not one"),
    (lambda c: c["datasets"].update(hh={"source": "hub"}), "datasets.hh: source hub needs the key 'name'"),
    # Roles a built model cannot play (a reward model would load a language model with a new random head).
    (lambda c: c["policies"].update(Alpaca="reward"), "policies.Alpaca: 'reward' is a reward build; a policy"),
    (lambda c: c.update(reward_model="instruct"), "reward_model: 'instruct' is a sft build"),
    (lambda c: c.update(evaluation_model="tokenizer"), "evaluation_model: 'tokenizer' is a tokenizer build"),
    (lambda c: c["models"]["instruct"]["build"].update(init="reward"), "models.instruct.build.init: 'reward'"),
    (lambda c: c["models"]["reward"]["build"]["on_policy"].update(policies=["base", "ghost"]),
     "models.reward.build.on_policy.policies[1]: 'ghost' is not a `models` entry"),
    (lambda c: c["models"]["reward"]["build"]["on_policy"].update(policies=["tokenizer"]),
     "models.reward.build.on_policy.policies[0]: 'tokenizer' is a tokenizer build"),
    (lambda c: c["models"]["instruct"]["build"].update(on_policy={"policies": ["base"]}),
     "models.instruct.build.on_policy: only a reward build collects on-policy pairs, not a sft build"),
    (lambda c: c["ppo"].update(num_layers_unfrozen=3),
     "ppo.num_layers_unfrozen: 3 layers to train, but policies.Alpaca (instruct) has 2"),
    (lambda c: c.update(accelerate_config="envs/accelerate/nope.yaml"),
     "accelerate_config: 'envs/accelerate/nope.yaml' cannot be read as YAML"),
    # Shapes and lengths a model built here cannot hold (they failed inside the job that built or used it).
    (lambda c: c["models"]["base"]["build"]["architecture"].update(n_head=3),
     "models.base.build.architecture.n_head: 3 heads do not split n_embd 128"),
    (lambda c: c["models"]["base"]["build"]["architecture"].update(n_head=128),
     "models.base.build.architecture.n_head: heads of width 1; rotary positions need an even head width"),
    (lambda c: c["rrhf"]["training"].update(max_length=300),
     "rrhf.training.max_length (policy base): 300 tokens, but base has 256 positions"),
    (lambda c: c["models"]["instruct"]["build"]["training"].update(max_length=512),
     "models.instruct.build.training.max_length: 512 tokens, but instruct has 256 positions"),
    (lambda c: c["sampling"]["samplers"]["top_p"].update(max_new_tokens=256),
     "sampling.samplers.top_p.max_new_tokens: 256 new tokens leave no room for a prompt in the 256 positions"),
    # The over-optimisation study: a policy role, settings that log along training, evaluated settings as points.
    (lambda c: c["overoptimisation"].update(policy="instruct"),
     "overoptimisation.policy: 'instruct' is not a role of `policies` (Alpaca, Alpaca-sft, LLaMA)"),
    (lambda c: c["overoptimisation"].update(along_training=["PPO", "DP"]),
     "overoptimisation.along_training[1]: 'DP' is not PPO, PPO-noKL, OP-k or OP-k+KL"),
    (lambda c: c["overoptimisation"].update(along_training=["IP-2"]), "overoptimisation.along_training[0]: 'IP-2'"),
    (lambda c: c["overoptimisation"].update(along_training=["PPO-nokl"]),
     "overoptimisation.along_training[0]: 'PPO-nokl' is not PPO"),
    (lambda c: c["overoptimisation"].update(points=["DP", "best-of-4"]),
     "overoptimisation.points[1]: 'best-of-4' is not an evaluated setting"),
    (lambda c: c["overoptimisation"].update(points=["OP-0"]), "overoptimisation.points[0]: 'OP-0' is not an evaluated"),
])
def test_each_check_names_its_key(edit, expected):
    problems = problems_of(edit)
    assert any(expected in problem for problem in problems), problems


def test_resources_of_a_rule_that_does_not_exist_are_named():
    from rrhf.plan.checks import rule_name_problems

    plan = tiny_plan(lambda c: c["resources"]["rules"].update(train_rhf={"gpu": 1}))
    assert rule_name_problems(plan, ["train_rrhf", "pretrain_lm", "train_reward_model"]) == [
        "resources.rules.train_rhf: no rule takes resources under the name 'train_rhf'; the names are pretrain_lm, "
        "train_reward_model, train_rrhf"]


def test_prompts_against_a_prepared_split(tmp_path, synthetic_frame):
    from rrhf.io import write_parquet
    from rrhf.plan.checks import size_problems

    plan = Plan(fill_defaults(copy.deepcopy(TINY)), tmp_path, STUDIES)
    assert size_problems(plan) == []  # nothing prepared yet: nothing to compare
    write_parquet(synthetic_frame.head(50), tmp_path / "resources/data/synthetic_hh/train.parquet", {})
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)  # the plan's data files are relative to the working folder, as in a run
    try:
        assert size_problems(plan) == ["data.train_prompts: 256 prompts asked for, but "
                                       "resources/data/synthetic_hh/train.parquet has only 50; ask for at most 50 "
                                       "(null takes them all)"]
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("target, expected", [
    ("results/eval/instruct/IP-0/metrics.json", "target results/eval/instruct/IP-0/metrics.json: setting 'IP-0'"),
    ("results/samples/instruct/IP-x/beam.parquet", "setting 'IP-x': in IP-n, n is a whole number from 1"),
    ("results/eval/nobody/DP/metrics.json", "'nobody' is not a policy model"),
    ("results/eval/instruct/DPP/metrics.json", "setting 'DPP' is not one of"),
])
def test_target_problems(target, expected):
    from rrhf.plan.checks import target_problems

    problems = target_problems(tiny_plan(), [target])
    assert len(problems) == 1 and expected in problems[0]
    ok = ["results/eval/instruct/IP-2/metrics.json", "results/eval/dataset/chosen/metrics.json",
          "results/eval/reward_model/pair_accuracy.json", "results/models/instruct/OP-2+KL", "results/table6.csv"]
    assert target_problems(tiny_plan(), ok) == []
