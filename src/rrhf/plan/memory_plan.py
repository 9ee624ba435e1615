"""The memory plan of a config: every GPU rule's estimate (rrhf.plan.memory's parts) for the largest case the
config can give it (the largest policy, the sampler with the most sequences, the setting with the most replies a
query, prompts as long as the model's positions allow), checked against the GPU's and the job's memory, and the
table a dry run prints.

    python -m rrhf.plan.memory_plan config/paper.yaml           # the table, and what does not fit
    python -m rrhf.plan.memory_plan config/paper.yaml --write   # ... and into docs/cluster.md
"""

from __future__ import annotations

import copy
import math
import sys
from typing import TYPE_CHECKING, Callable

from rrhf.config.blocks import Training
from rrhf.plan.memory import (
    KL_BATCH,
    PROCESS_HOST,
    Layout,
    RuleMemory,
    activation_bytes,
    add,
    block_activations,
    forward_pass,
    generation,
    host_at_load,
    inference_bytes,
    kv_cache,
    logits,
    lora_parameters,
    memory_problems,
    memory_table,
    replies_per_prompt,
    sequences_of,
    training_layout,
    training_state,
    weights,
)
from rrhf.plan.model_facts import ModelFacts, model_facts

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan

def used_settings(plan: "Plan") -> list:
    """The parsed settings the tables and studies of the config evaluate or train."""
    names = {row.setting for rows in plan.tables.values() for row in rows if getattr(row, "setting", None)}
    for study in plan.active_studies():
        names |= study.settings_used()
    parsed = []
    for name in sorted(names):
        try:
            parsed.append(plan.setting(name))
        except ValueError:
            continue
    return parsed


def largest_policy(plan: "Plan") -> tuple[str, ModelFacts]:
    """(models entry, sizes) of the policy with the most parameters."""
    sized = [(name, model_facts(plan, name)) for name in sorted(set(plan.policies.values()))]
    return max(sized, key=lambda item: item[1].parameters)


def reward_facts(plan: "Plan") -> ModelFacts:
    return model_facts(plan, plan.reward_model, "sequence_classification")


def reward_host(plan: "Plan") -> int:
    """Host memory of loading the reward model: a value-head checkpoint is read whole (torch.load) before it
    moves; a model folder goes straight to the GPU."""
    if plan.models[plan.reward_model].get("format") == "value_head_checkpoint":
        return 4 * reward_facts(plan).parameters
    return 0


def trainer_memory(plan: "Plan", rule: str, facts: ModelFacts, training, tokens: int, scored: int,
                   case: str, lora=None) -> RuleMemory:
    """A trainer of the one loop: state, the activations of ``tokens`` tokens and the logits of ``scored`` ones."""
    layout = training_layout(plan, rule)
    trainable = lora_parameters(facts, lora) if lora is not None else facts.parameters
    dtype = activation_bytes(plan)
    parts = training_state(facts, trainable, layout)
    parts["activations"] = block_activations(facts, tokens, dtype, plan.precision.gradient_checkpointing,
                                             facts.layers) + logits(facts, scored, dtype)
    if dtype == 2 and not layout.fsdp:  # autocast's bf16 copies of the weights the backward pass reads
        parts["activations"] += 2 * facts.parameters
    return RuleMemory(rule, plan.rule_resources(rule)["gpu"], layout.describe(), case, parts,
                      host_at_load(facts, layout))


def inference_memory(plan: "Plan", rule: str, case: str, phases: list[dict[str, int]], host: int = 0) -> RuleMemory:
    """A job that only runs models forward, in phases one after the other: the largest phase."""
    parts = max(phases, key=lambda p: sum(p.values()))
    return RuleMemory(rule, plan.rule_resources(rule)["gpu"], "1 process", case, parts, PROCESS_HOST + host)


# --- the rules ---------------------------------------------------------------------------------------------------

def sampling_rules(plan: "Plan") -> list[RuleMemory]:
    name, policy = largest_policy(plan)
    ib, estimates = inference_bytes(plan), []
    used = sorted({spec["sampler"] for spec in plan.settings.values() if spec.get("sampler")})
    if used:
        sampler = max(used, key=lambda s: sequences_of(plan, s))
        parts = add({"weights": weights(policy, ib)}, generation(
            policy, sequences_of(plan, sampler), plan.sampling.sampler(sampler).max_new_tokens, ib))
        case = f"{name}, {sampler}: {sequences_of(plan, sampler)} sequences"
        estimates += [inference_memory(plan, rule, case, [parts]) for rule in
                      ("sample_responses", "sample_iterated_responses")]
    reward = reward_facts(plan)
    score = {"weights": weights(reward, ib),
             "activations": forward_pass(reward, plan.scoring.batch_size, plan.scoring.max_length, ib)}
    case = f"{plan.reward_model}: {plan.scoring.batch_size} x {plan.scoring.max_length} tokens"
    estimates += [inference_memory(plan, rule, case, [score], reward_host(plan)) for rule in
                  ("score_samples", "score_iterated_samples", "score_provided")]
    return estimates


def evaluation_rules(plan: "Plan") -> list[RuleMemory]:
    name, policy = largest_policy(plan)
    ib, reward, decoding = inference_bytes(plan), reward_facts(plan), plan.evaluation.decoding
    evaluator = model_facts(plan, plan.evaluation_model)
    length = plan.scoring.max_length
    scoring = {"weights": weights(reward, ib) + weights(evaluator, ib),
               "activations": forward_pass(reward, plan.scoring.batch_size, length, ib)
               + logits(evaluator, 16 * length, 4) // 3}
    beams = decoding.num_beams if decoding.method == "beam" else 1
    sampling = add({"weights": weights(policy, ib)},
                   generation(policy, decoding.batch_size * beams, decoding.max_new_tokens, ib))
    with_kl = add(sampling, {"other models": weights(policy, ib),
                             "activations": 2 * 2 * KL_BATCH * length * policy.vocabulary * 4})
    estimates = [inference_memory(plan, "evaluate_policy", f"{name} and its initial policy (KL)",
                                  [with_kl, scoring], reward_host(plan)),
                 inference_memory(plan, "evaluate_provided", f"{plan.reward_model} and {plan.evaluation_model}",
                                  [scoring], reward_host(plan))]
    best = [s.number for s in used_settings(plan) if s.kind == "best_of_n"]
    if best:
        best_of = plan.evaluation.best_of_n
        phase = add({"weights": weights(policy, ib)},
                    generation(policy, best_of.batch_size * max(best), best_of.max_new_tokens, ib))
        estimates.append(inference_memory(plan, "evaluate_best_of_n", f"{name}, best-of-{max(best)}: "
                                          f"{best_of.batch_size * max(best)} sequences", [phase, scoring],
                                          reward_host(plan)))
    accuracy = {"weights": weights(policy, ib), "activations": logits(policy, plan.scoring.batch_size * length, 4)}
    estimates.append(inference_memory(plan, "pair_accuracy", f"{name} and {plan.reward_model}",
                                      [accuracy, scoring], reward_host(plan)))
    return estimates


def build_rules(plan: "Plan") -> list[RuleMemory]:
    """pretrain_lm, train_sft, train_reward_model (the largest build of each kind), collect_preferences."""
    estimates: dict[str, RuleMemory] = {}
    for name, spec in sorted(plan.models.items()):
        build = spec.get("build")
        if not build or build["kind"] == "tokenizer":
            continue
        training = Training.coerce(plan.build(name)["training"])
        rule = {"pretrain": "pretrain_lm", "sft": "train_sft", "reward": "train_reward_model"}[build["kind"]]
        head = "sequence_classification" if build["kind"] == "reward" else "causal_lm"
        facts = model_facts(plan, name, head)
        pairs = 2 if build["kind"] == "reward" else 1
        tokens = pairs * training.batch_size * training.max_length
        scored = 0 if build["kind"] == "reward" else tokens
        estimate = trainer_memory(plan, rule, facts, training, tokens, scored,
                                  f"{name}: {pairs * training.batch_size} x {training.max_length} tokens",
                                  training.lora)
        if rule not in estimates or estimate.allocated > estimates[rule].allocated:
            estimates[rule] = estimate
        on_policy = build.get("on_policy")
        if on_policy:
            policy = max((model_facts(plan, p) for p in on_policy["policies"]), key=lambda f: f.parameters)
            ib = inference_bytes(plan)
            parts = add({"weights": weights(policy, ib)},
                        generation(policy, 2 * on_policy["batch_size"], on_policy["max_new_tokens"], ib))
            estimates["collect_preferences"] = inference_memory(plan, "collect_preferences",
                                                                f"{name}'s on-policy replies", [parts])
    return list(estimates.values())


def rrhf_rules(plan: "Plan") -> list[RuleMemory]:
    """train_rrhf (with Figure 3's monitor), train_online_rrhf and the preference methods."""
    name, policy = largest_policy(plan)
    training, ib, k = plan.rrhf.training, inference_bytes(plan), replies_per_prompt(plan)
    tokens = training.batch_size * k * training.max_length
    estimate = trainer_memory(plan, "train_rrhf", policy, training, tokens, tokens,
                              f"{name}: {training.batch_size} queries x {k} replies x {training.max_length} tokens",
                              training.lora)
    monitor = plan.rrhf.reward_during_training
    layout = training_layout(plan, "train_rrhf")
    if monitor.every_steps:
        reward = reward_facts(plan)
        prompts = math.ceil(monitor.prompts / layout.processes)
        extra = {"other models": weights(reward, ib) + (weights(policy, 2) if layout.fsdp else 0),
                 "cache": kv_cache(policy, prompts, policy.positions or 2048, ib)}
        estimate.parts = add(estimate.parts, extra)
        estimate.case += ", with the reward curve"
        estimate.host += layout.processes * reward_host(plan)
    estimates = [estimate]
    if any(s.kind == "online" for s in used_settings(plan)):
        estimates.append(online_memory(plan, name, policy))
    return estimates


def online_memory(plan: "Plan", name: str, policy: ModelFacts) -> RuleMemory:
    """OP-k[+KL]: RRHF's training state and step, and each round's sampling with a generating copy (FSDP), rho's
    snapshot of what trains, the reward model, the cache and the KL's logits; the larger of the two phases."""
    sampler = plan.resampling.setting and plan.settings[plan.resampling.setting].get("sampler")
    sampler = sampler or max(plan.sampling.samplers, key=lambda s: sequences_of(plan, s))
    spec = plan.sampling.sampler(sampler)
    sequences = sequences_of(plan, sampler, plan.resampling.online_batch_size)
    k = spec.num_responses + 2
    training, ib = plan.rrhf.training, inference_bytes(plan)
    tokens = training.batch_size * k * training.max_length
    base = trainer_memory(plan, "train_online_rrhf", policy, training, tokens, tokens,
                          f"{name}: {sampler} rounds of {sequences} sequences, {k} replies a query",
                          training.lora)
    layout = training_layout(plan, "train_online_rrhf")
    reward = reward_facts(plan)
    trainable = lora_parameters(policy, training.lora) if training.lora is not None else policy.parameters
    held = {"other models": weights(reward, ib) + trainable * (2 if layout.fsdp else 4)}  # reward model, rho
    activations = base.parts.pop("activations")
    training_phase = add(base.parts, add(held, {"activations": activations}))
    sampling_phase = add(base.parts, add(held, generation(policy, sequences, spec.max_new_tokens, ib)))
    sampling_phase["other models"] += weights(policy, 2) if layout.fsdp else 0
    sampling_phase["activations"] += 2 * 2 * plan.scoring.batch_size * training.max_length * policy.vocabulary * 4
    base.parts = max((training_phase, sampling_phase), key=lambda p: sum(p.values()))
    base.host += layout.processes * reward_host(plan)
    return base


def ppo_rules(plan: "Plan") -> list[RuleMemory]:
    """train_ppo, when a table row or a study trains PPO (the fine-grained study plans train_fine_grained_ppo)."""
    if not any(s.kind == "ppo" for s in used_settings(plan)):
        return []
    return [ppo_rule_memory(plan, "train_ppo")]


def ppo_rule_memory(plan: "Plan", rule: str, other_models: int = 0) -> RuleMemory:
    """A PPO trainer's one process: the policy with its value head, rho's snapshot of what trains, the reward
    model (and ``other_models`` bytes besides: the segment reward models), rollouts' cache and a PPO minibatch."""
    name, policy = largest_policy(plan)
    ppo, ib, dtype = plan.ppo, inference_bytes(plan), activation_bytes(plan)
    unfrozen = ppo.num_layers_unfrozen
    if ppo.training.lora is not None:
        trainable, layers = lora_parameters(policy, ppo.training.lora), policy.layers
    elif unfrozen is None:
        trainable, layers = policy.parameters, policy.layers
    else:
        output = 0 if policy.embedding_parameters < 2 * policy.vocabulary * policy.hidden else \
            policy.vocabulary * policy.hidden  # an untied output projection trains
        trainable, layers = unfrozen * policy.block_parameters + output, unfrozen
    value_head = 2 * policy.hidden * policy.hidden + 3 * policy.hidden + 1
    trainable += value_head
    tokens = ppo.training.batch_size * ppo.training.max_length
    parts = {"weights": 4 * (policy.parameters + value_head), "gradients": 4 * trainable, "optimizer": 8 * trainable,
             "other models": 4 * (trainable - value_head) + weights(reward_facts(plan), ib),
             "activations": block_activations(policy, tokens, dtype, plan.precision.gradient_checkpointing, layers)
             + logits(policy, tokens, dtype) + 4 * tokens * policy.hidden * (policy.layers + 1)
             + (2 * trainable if dtype == 2 else 0),
             "cache": kv_cache(policy, ppo.chunk_size, ppo.training.max_length, ib)}
    host = host_at_load(policy, Layout(1)) + reward_host(plan)
    case = f"{name}: " + ("LoRA" if ppo.training.lora else f"top {unfrozen} layers" if unfrozen else "every layer")
    parts["other models"] += other_models
    return RuleMemory(rule, plan.rule_resources(rule)["gpu"], "1 process", case, parts, host)




ESTIMATORS: list[Callable[["Plan"], list[RuleMemory]]] = [
    sampling_rules, evaluation_rules, build_rules, rrhf_rules, ppo_rules]


def memory_plan(plan: "Plan") -> list[RuleMemory]:
    """The estimate of every rule of the config that asks for a GPU, sorted by rule."""
    estimates = [estimate for estimator in ESTIMATORS for estimate in estimator(plan)]
    estimates += [estimate for study in plan.active_studies() for estimate in study.memory()]
    return sorted((e for e in estimates if e.gpus > 0), key=lambda e: e.rule)


def uses_gpus(plan: "Plan") -> bool:
    """Whether any rule of the config asks for a GPU (then its memory is planned)."""
    return plan.resources.gpu > 0 or any(r.gpu for r in plan.resources.rules.values() if r.gpu is not None)


def planned_gpu_memory(plan: "Plan") -> str | None:
    """The memory plan's table when any rule of the config asks for a GPU (None when none does); raises
    ValueError naming each rule that does not fit, with its figures, or a model whose size cannot be read."""
    if not uses_gpus(plan):
        return None
    try:
        estimates = memory_plan(plan)
    except FileNotFoundError as error:
        raise ValueError(f"config error(s):\n  the GPU memory plan needs every model's size: {error}") from None
    if not estimates:  # GPUs for a rule name that no rule has: said by the check of resources.rules
        return None
    table = memory_table(plan, estimates)
    problems = memory_problems(plan, estimates)
    if problems:
        raise ValueError("config error(s): GPU memory\n" + table + "\n  " + "\n  ".join(problems))
    return table


DOCS_START = "<!-- the memory plan of config/paper.yaml: python -m rrhf.plan.memory_plan config/paper.yaml --write -->"
DOCS_END = "<!-- end of the memory plan -->"


def docs_block(table: str) -> str:
    """The plan's table as docs/cluster.md holds it, between its markers."""
    return f"{DOCS_START}\n\n```\n{table}\n```\n\n{DOCS_END}"


def report_gpu_memory(plan: "Plan", say: Callable[[str], None]) -> None:
    """:func:`planned_gpu_memory`, its table handed to ``say`` (Snakemake's logger) when there is one."""
    table = planned_gpu_memory(plan)
    if table:
        say(f"GPU memory per process, planned from the config (GiB; docs/cluster.md):\n{table}")


def main(argv: list[str]) -> int:
    """``python -m rrhf.plan.memory_plan CONFIG [--write]``: the memory plan of a config file (on the schema's
    defaults, as the workflow reads it) and what does not fit (exit 1); ``--write`` puts the table into
    docs/cluster.md between its markers."""
    from pathlib import Path

    import yaml

    from rrhf.config.schema import fill_defaults
    from rrhf.plan.plan import Plan

    if not argv or len(argv) > 2 or (len(argv) == 2 and argv[1] != "--write"):
        print("usage: python -m rrhf.plan.memory_plan CONFIG.yaml [--write]", file=sys.stderr)
        return 2
    workflow = Path(__file__).resolve().parents[3]
    plan = Plan(fill_defaults(copy.deepcopy(yaml.safe_load(Path(argv[0]).read_text()))), workflow)
    estimates = memory_plan(plan)
    table = memory_table(plan, estimates)
    print(table)
    if argv[1:] == ["--write"]:
        docs = workflow / "docs" / "cluster.md"
        text = docs.read_text()
        start, end = text.index(DOCS_START), text.index(DOCS_END) + len(DOCS_END)
        docs.write_text(text[:start] + docs_block(table) + text[end:])
    problems = memory_problems(plan, estimates)
    for problem in problems:
        print(f"does not fit: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
