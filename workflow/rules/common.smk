# Config validation and the helpers every rule file uses.
import os
import re
from pathlib import Path

import yaml
from rrhf.config_checks import config_problems  # src/ is on sys.path (Snakefile)
from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, "../../config/schema.yaml", set_default=True)

# The library lives in src/; every job (local, conda or SLURM) finds it through PYTHONPATH.
os.environ.update(
    PYTHONPATH=os.pathsep.join(filter(None, [str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")]))
)
if config["offline"]:
    os.environ.update(HF_HUB_OFFLINE="1")

ENV = "../../envs/rrhf.yaml"
MODELS = config["models"]
POLICIES = config["policies"]  # table role -> models entry
SETTINGS = config["settings"]
SAMPLERS = ["beam", "diverse_beam", "top_p"]
SHARDS = config["shards"]
REWARD_MODEL = config["reward_model"]
EVALUATION_MODEL = config["evaluation_model"]
TABLES_FILE = Path(workflow.basedir, config["tables"])
RESAMPLING = config["resampling"]  # IP-{n} and OP-{k}[+KL]: the setting they follow, the KL coefficient
# Rows of config/tables.yaml whose setting this config runs under another name (e.g. the tiny OP-32 -> OP-2).
TABLES = {
    table: [{**row, "setting": config["table_settings"].get(row["setting"], row["setting"])} if "setting" in row
            else row for row in rows]
    for table, rows in yaml.safe_load(TABLES_FILE.read_text()).items()
}
# accelerate config of training rules with gpu > 1 (e.g. FSDP), relative to the workflow folder.
ACCELERATE_CONFIG = str(Path(workflow.basedir, config["accelerate_config"])) if config["accelerate_config"] else None


# Settings named by a pattern, their number taken from the target path: IP-{n} (iterated: IP-1 is
# resampling.setting, IP-n for n >= 2 is trained by train_rrhf) and OP-{k}[+KL] (online, train_online_rrhf).
ITERATED_PATTERN = r"IP-[1-9][0-9]*"
LATER_ITERATION_PATTERN = r"IP-(?:[2-9]|[1-9][0-9]+)"
ONLINE_PATTERN = r"OP-[1-9][0-9]*(?:\+KL)?"
# Settings a table row may name besides the RRHF ones (`settings`, IP-{n}, OP-{k}[+KL]): a pattern per table.
EXTRA_SETTINGS = {"table6": None, "table7": None, "table2": "none|PPO|best-of-[1-9][0-9]*", "table5": "none|PPO"}
# Rows of a table that are not a policy: Table 2's dataset replies, Table 5's reward model.
OTHER_ROWS = {"table2": ("responses", ["chosen", "rejected"]), "table5": ("reward_model", [True])}


def table_row_problems(table, row, where):
    """What is wrong with one row of config/tables.yaml (an empty list when nothing is)."""
    if table not in EXTRA_SETTINGS:
        return [f"{where}: unknown table {table!r}; expected one of {sorted(EXTRA_SETTINGS)}"]
    key, values = OTHER_ROWS.get(table, (None, []))
    if key in row:
        if set(row) != {key} or row[key] not in values:
            return [f"{where}: a {key} row is {{{key}: one of {values}}}, not {row}"]
        return []
    problems = []
    if row.get("policy") not in POLICIES:
        problems.append(f"{where} policy: {row.get('policy')!r} is not one of {sorted(POLICIES)}")
    setting, pattern = row.get("setting"), EXTRA_SETTINGS[table]
    if not rrhf_setting(setting) and not (pattern and re.fullmatch(pattern, str(setting))):
        other = f", {pattern!r}" if pattern else ""
        problems.append(f"{where} setting: {setting!r} is not one of {sorted(SETTINGS)} nor matches "
                        f"{ITERATED_PATTERN!r}, {ONLINE_PATTERN!r}{other}")
    return problems


def rrhf_setting(setting):
    """Whether a setting trains with RRHF: a name of `settings`, IP-{n} or OP-{k}[+KL]."""
    return setting in SETTINGS or bool(re.fullmatch(f"{ITERATED_PATTERN}|{ONLINE_PATTERN}", str(setting)))


def iteration_number(setting):
    """n of an IP-{n} setting, else None."""
    match = re.fullmatch(r"IP-([1-9][0-9]*)", setting)
    return int(match.group(1)) if match else None


def online_schedule(setting):
    """(k, with_kl) of an OP-{k}[+KL] setting, else None."""
    match = re.fullmatch(r"OP-([1-9][0-9]*)(\+KL)?", setting)
    return (int(match.group(1)), bool(match.group(2))) if match else None


def trained_setting(setting):
    """The setting whose model and training set a setting's are: IP-1 is resampling.setting, the rest themselves."""
    return RESAMPLING["setting"] if iteration_number(setting) == 1 else setting


def setting_spec(setting):
    """The `settings` entry a setting follows (its sampler, provided responses, rank weight): IP-{n} and
    OP-{k}[+KL] follow resampling.setting."""
    if iteration_number(setting) or online_schedule(setting):
        return SETTINGS[RESAMPLING["setting"]]
    return SETTINGS[setting]


def rule_resources(rule_name):
    """A heavy rule's cluster resources (gpu, cpus_per_task, mem_mb, runtime): the config's resources section,
    replaced key by key by the rule's own entry under resources.rules."""
    keys = ("gpu", "cpus_per_task", "mem_mb", "runtime")
    own = config["resources"]["rules"].get(rule_name, {})
    return {key: own.get(key, config["resources"][key]) for key in keys}


def rule_threads(rule_name):
    """Threads of a rule's jobs: its cpus_per_task (what SLURM gives it, and what it uses locally)."""
    return rule_resources(rule_name)["cpus_per_task"]


def lora_problems(config):
    """LoRA where it cannot work: a pre-training build (nothing trained to adapt), or a trainer that runs under
    an FSDP accelerate_config (every launched trainer does, on any number of GPUs: rrhf.launch.needs_launch),
    as merging the adapters before saving needs whole weights."""
    accelerate = yaml.safe_load(Path(ACCELERATE_CONFIG).read_text()) if ACCELERATE_CONFIG else {}
    fsdp = accelerate.get("distributed_type") == "FSDP"
    problems = []
    for key, training, kind in [("rrhf.training", config["rrhf"]["training"], "rrhf")] + [
            (f"models.{name}.build.training", spec["build"]["training"], spec["build"]["kind"])
            for name, spec in MODELS.items() if "training" in spec.get("build", {})]:
        if "lora" not in training:
            continue
        if kind == "pretrain":
            problems.append(f"{key}.lora: a pretrain build trains a new model in full; LoRA adapts a trained one")
        elif fsdp:
            problems.append(f"{key}.lora: LoRA with FSDP (accelerate_config {config['accelerate_config']}) is not "
                            "supported; use envs/accelerate/ddp.yaml, or accelerate_config null on one GPU")
    return problems


def check_references(config):
    """Stop before any job starts when a name points at nothing; the message names the key."""
    problems = []

    def expect(value, pool, key):
        if value not in pool:
            problems.append(f"{key}: {value!r} is not one of {sorted(pool)}")

    expect(config["data"]["dataset"], config["datasets"], "data.dataset")
    for role, name in POLICIES.items():
        expect(name, MODELS, f"policies.{role}")
    expect(REWARD_MODEL, MODELS, "reward_model")
    expect(EVALUATION_MODEL, MODELS, "evaluation_model")
    for name, spec in MODELS.items():
        build = spec.get("build")
        if not build:
            continue
        expect(build["dataset"], config["datasets"], f"models.{name}.build.dataset")
        if build["kind"] in ("sft", "reward"):
            expect(build.get("init"), MODELS, f"models.{name}.build.init")
        if build["kind"] == "pretrain":
            expect(build.get("tokenizer"), MODELS, f"models.{name}.build.tokenizer")
    for name, spec in MODELS.items():
        if spec.get("format", "transformers") == "value_head_checkpoint":
            if "path" not in spec or "backbone" not in spec:
                problems.append(f"models.{name}: format value_head_checkpoint needs `path` (the checkpoint) and "
                                "`backbone` (the folder or hub id of its config and tokenizer)")
            roles = [f"policies.{role}" for role, model in POLICIES.items() if model == name]
            roles += ["evaluation_model"] if EVALUATION_MODEL == name else []
            roles += [f"models.{other}.build.init" for other, o in MODELS.items()
                      if o.get("build", {}).get("init") == name]
            if roles:
                problems.append(f"models.{name}: a value_head_checkpoint model can only be the reward_model, "
                                f"but {', '.join(roles)} names it")
    problems.extend(lora_problems(config))
    problems.extend(config_problems(config))  # samplers, device, model paths (rrhf.config_checks)
    for name, spec in config["datasets"].items():
        needed = {"hub": "name", "anthropic_jsonl": "files"}.get(spec["source"])
        if needed and needed not in spec:
            problems.append(f"datasets.{name}: source {spec['source']} needs the key {needed!r}")
    for name, spec in SETTINGS.items():
        if "training_set" in spec:
            own = [s for s, v in SETTINGS.items() if "training_set" not in v]
            expect(spec["training_set"], own, f"settings.{name}.training_set")
    expect(RESAMPLING["setting"], [s for s, v in SETTINGS.items() if v.get("sampler")], "resampling.setting")
    for name, setting in config["table_settings"].items():
        if not rrhf_setting(setting):
            problems.append(f"table_settings.{name}: {setting!r} is not one of {sorted(SETTINGS)} nor matches "
                            f"{ITERATED_PATTERN!r}, {ONLINE_PATTERN!r}")
    if config["ppo"]["training"]["max_length"] <= config["ppo"]["generation"]["max_new_tokens"]:
        problems.append("ppo.training.max_length must exceed ppo.generation.max_new_tokens (the prompt keeps the rest)")
    for rule_name, what in (("train_ppo", "PPO"), ("train_online_rrhf", "Online RRHF (OP-k)")):
        if config["resources"]["rules"].get(rule_name, {}).get("gpu", config["resources"]["gpu"]) > 1:
            problems.append(f"resources.rules.{rule_name}.gpu: {what} runs in one process on one GPU; "
                            "set it to 1 (or 0)")
    for table, rows in TABLES.items():
        for number, row in enumerate(rows, start=1):
            problems.extend(table_row_problems(table, row, f"{TABLES_FILE.name}: {table} row {number}"))
    if problems:
        raise ValueError("config error(s):\n  " + "\n  ".join(problems))


check_references(config)
DATASET_SOURCE = config["datasets"][config["data"]["dataset"]]["source"]  # its gold reward, if any, grades evaluations


def names_pattern(names):
    """A wildcard constraint that matches exactly these names."""
    return "|".join(sorted(map(re.escape, names), key=len, reverse=True)) or "$^"


def built_models(kind):
    return [name for name, spec in MODELS.items() if spec.get("build", {}).get("kind") == kind]


def model_path(name):
    """Where a model loads from: its build folder, or its configured hub id / local path."""
    spec = MODELS[name]
    return f"resources/models/{name}" if "build" in spec else spec["path"]


def model_input(name):
    """The model as a job input: its build folder or a local path; nothing for a hub id."""
    path = model_path(name)
    return [path] if "build" in MODELS[name] or Path(path).exists() else []


def reward_model_source():
    """How jobs load the reward model: its path, or, for another format or with trust_remote_code, a dict of
    path, format, backbone and trust_remote_code (rrhf.models.load_reward_model takes either)."""
    spec = MODELS[REWARD_MODEL]
    if spec.get("format", "transformers") == "transformers" and not spec.get("trust_remote_code", False):
        return model_path(REWARD_MODEL)
    return {"path": model_path(REWARD_MODEL), "format": spec.get("format", "transformers"),
            "backbone": spec.get("backbone"), "trust_remote_code": spec.get("trust_remote_code", False)}


def reward_model_input():
    """The reward model (and a local backbone folder) as job inputs: nothing for hub ids."""
    backbone = MODELS[REWARD_MODEL].get("backbone")
    return model_input(REWARD_MODEL) + ([backbone] if backbone and Path(backbone).exists() else [])


def dataset_file(dataset, split):
    return f"resources/data/{dataset}/{split}.parquet"


def training_settings(block):
    """A training block of the config with the run-wide precision settings every trainer reads."""
    precision = config["precision"]
    return {**block, "mixed_precision": precision["mixed_precision"],
            "gradient_checkpointing": precision["gradient_checkpointing"]}


def dataset_source_files(wildcards):
    """Local input files of a dataset split (anthropic_jsonl files, a local hub-format folder)."""
    spec = config["datasets"][wildcards.dataset]
    if spec["source"] == "anthropic_jsonl":
        return [spec["files"][wildcards.split]]
    if spec["source"] == "hub" and Path(spec["name"]).exists():
        return [spec["name"]]
    return []


def build_spec(name):
    """The build recipe of a models entry."""
    return MODELS[name]["build"]


def build_train_data(wildcards):
    """Training split of the dataset a model build trains on."""
    return dataset_file(build_spec(wildcards.name)["dataset"], "train")


def sharded(path):
    """The per-shard form of a path when sampling and scoring are sharded: a/b.parquet -> a/b/shard{shard}.parquet."""
    root, extension = os.path.splitext(path)
    return f"{root}/shard{{shard}}{extension}" if SHARDS > 1 else path


def sampler_params(sampler):
    """A sampler's settings (sampling.samplers) with the sampling seed and batch size."""
    return {**config["sampling"]["samplers"][sampler], "seed": config["sampling"]["seed"],
            "batch_size": config["sampling"]["batch_size"]}


def shard_of(wildcards):
    """(index, count) of a shard job, or None when sampling and scoring are not sharded."""
    shard = getattr(wildcards, "shard", None)
    return None if shard is None else (int(shard), SHARDS)


def setting_parts(wildcards):
    """The scored parts a setting is made of: sampled responses and/or the provided ones. IP-{n}'s samples
    come from IP-(n-1)'s model, under results/rewards/{policy}/IP-{n}/."""
    spec = setting_spec(wildcards.setting)
    folder = f"{wildcards.policy}/{wildcards.setting}" if iteration_number(wildcards.setting) else wildcards.policy
    parts = {}
    if spec["sampler"]:
        parts["sampled"] = f"results/rewards/{folder}/{spec['sampler']}.parquet"
    if spec["provided"]:
        parts["provided"] = "results/rewards/provided.parquet"
    return parts


def own_training_sets():
    """Settings that build their own training set (not reusing another's)."""
    return [name for name, spec in SETTINGS.items() if "training_set" not in spec]


def scored_file(policy, setting):
    """The training set a setting trains on (its own, or the one it reuses); None for OP-{k}[+KL], whose
    responses are sampled during training (results/models/{policy}/{setting}/online_samples.parquet)."""
    if online_schedule(setting):
        return None
    setting = trained_setting(setting)
    own = setting if iteration_number(setting) else SETTINGS[setting].get("training_set", setting)
    return f"results/scored/{policy}/{own}.parquet"


def setting_rank_weight(setting):
    return setting_spec(setting).get("rank_weight", config["rrhf"]["rank_weight"])


def previous_iteration_model(policy, setting):
    """The model IP-(n-1) trained, for IP-{n} with n >= 2 (IP-1's is resampling.setting's); None otherwise."""
    n = iteration_number(setting)
    return f"results/models/{policy}/{trained_setting(f'IP-{n - 1}')}" if n and n > 1 else None


def starting_model(policy, setting):
    """The model a setting's training starts from (and IP-{n} samples with): IP-(n-1)'s for IP-{n}, n >= 2;
    the untrained policy otherwise."""
    return previous_iteration_model(policy, setting) or model_path(policy)


def starting_model_input(policy, setting):
    previous = previous_iteration_model(policy, setting)
    return [previous] if previous else model_input(policy)


def online_params(wildcards):
    """What train_online_rrhf needs to know of an OP-{k}[+KL] setting: k, the KL coefficient (0 without +KL)
    and the sampler it draws with."""
    steps_per_sample, with_kl = online_schedule(wildcards.setting)
    sampler = setting_spec(wildcards.setting)["sampler"]
    return {"steps_per_sample": steps_per_sample, "kl_coef": RESAMPLING["kl_coef"] if with_kl else 0.0,
            "sampler": sampler, "sampler_params": sampler_params(sampler)}


def online_provided_input(wildcards):
    """The scored provided responses an OP-{k} run adds to its samples, if its setting has them."""
    return {"provided": "results/rewards/provided.parquet"} if setting_spec(wildcards.setting)["provided"] else {}


def evaluated_model(wildcards):
    """The model an evaluation uses: the RRHF- or PPO-trained one, or the untrained policy for "none"."""
    if wildcards.setting == "none":
        return model_path(wildcards.policy)
    return f"results/models/{wildcards.policy}/{trained_setting(wildcards.setting)}"


def evaluated_model_input(wildcards):
    if wildcards.setting == "none":
        return model_input(wildcards.policy)
    return [evaluated_model(wildcards)]


def agreement_training_sets():
    """{policy}/{training set} -> scored file, for every training set a table row trains on."""
    sets = {}
    for rows in TABLES.values():
        for row in rows:
            if rrhf_setting(row.get("setting")):
                path = scored_file(POLICIES[row["policy"]], row["setting"])
                if path:
                    sets[path.removeprefix("results/scored/").removesuffix(".parquet")] = path
    return sets


def evaluation_file(model, setting, name):
    """A table row's evaluation file; an IP-1 row reads resampling.setting's (the same model, evaluated once)."""
    return f"results/eval/{model}/{trained_setting(setting)}/{name}"


def table_rows(table):
    """A table's policy rows with the model name, display name and setting of each."""
    rows = []
    for row in TABLES.get(table, []):
        model = POLICIES[row["policy"]]
        rows.append({"model": model, "policy": MODELS[model]["display_name"], "setting": row["setting"],
                     "rank_weight": setting_rank_weight(row["setting"]) if rrhf_setting(row["setting"]) else None})
    return rows


def table2_entries():
    """(label row, metrics file) of each Table 2 row: the dataset's good / bad replies, or a policy's evaluation."""
    entries = []
    for row in TABLES.get("table2", []):
        if "responses" in row:
            label = {"chosen": "good responses", "rejected": "bad responses"}[row["responses"]]
            entries.append(({"policy": "dataset", "setting": label},
                            f"results/eval/dataset/{row['responses']}/metrics.json"))
        else:
            model = POLICIES[row["policy"]]
            entries.append(({"policy": MODELS[model]["display_name"], "setting": row["setting"]},
                            evaluation_file(model, row["setting"], "metrics.json")))
    return entries


def table5_entries():
    """(label row, accuracy file) of each Table 5 row: the reward model, or a policy (untrained or trained)."""
    entries = []
    for row in TABLES.get("table5", []):
        if "reward_model" in row:
            entries.append(({"policy": MODELS[REWARD_MODEL]["display_name"], "setting": "reward model"},
                            "results/eval/reward_model/pair_accuracy.json"))
        else:
            model = POLICIES[row["policy"]]
            entries.append(({"policy": MODELS[model]["display_name"], "setting": row["setting"]},
                            evaluation_file(model, row["setting"], "pair_accuracy.json")))
    return entries


# Settings an evaluation accepts: the untrained policy, PPO, and every RRHF setting.
EVALUATED_SETTINGS = "|".join([names_pattern([*SETTINGS, "none", "PPO"]), ITERATED_PATTERN, ONLINE_PATTERN])


wildcard_constraints:
    dataset=names_pattern(config["datasets"]),
    split="train|test",
    policy=names_pattern(set(POLICIES.values())),
    sampler=names_pattern(SAMPLERS),
    shard=r"\d+",
