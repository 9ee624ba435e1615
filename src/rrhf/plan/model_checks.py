"""Checks of the models a config names, before the first job: the roles a built model can play, the shapes of
the models built here, and the lengths their positions hold. Part of rrhf.plan.checks.plan_problems."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rrhf.plan.settings import PPO_SETTINGS

if TYPE_CHECKING:
    from rrhf.plan.plan import Plan


def role_problems(plan: "Plan") -> list[str]:
    """A built model in a role it cannot play: a policy, the evaluation LM or a build's init that is not a causal
    LM, a reward model that is no reward build, a tokenizer that is not a tokenizer build (a model given by
    `path` is taken to fit its role); PPO training more layers than a policy has."""
    kinds = {name: spec["build"]["kind"] for name, spec in plan.models.items() if "build" in spec}
    problems = []

    def expect(name, allowed, key, what):
        if name in kinds and kinds[name] not in allowed:
            problems.append(f"{key}: {name!r} is a {kinds[name]} build; {what}")

    lm = ("pretrain", "sft")
    for role, name in plan.policies.items():
        expect(name, lm, f"policies.{role}", "a policy is a causal LM (a pretrain or sft build, or a path)")
    expect(plan.evaluation_model, lm, "evaluation_model", "perplexity needs a causal LM (pretrain or sft)")
    expect(plan.reward_model, ("reward",), "reward_model", "the reward model is a reward build or a path")
    for name, spec in plan.models.items():
        build = spec.get("build", {})
        if build.get("kind") in ("sft", "reward"):
            expect(build.get("init"), lm, f"models.{name}.build.init", "a build starts from a causal LM")
        if build.get("kind") == "pretrain":
            expect(build.get("tokenizer"), ("tokenizer",), f"models.{name}.build.tokenizer",
                   "name a tokenizer build (or a model given by path)")
        if build.get("backbone_layers") is not None and build.get("kind") != "reward":
            problems.append(f"models.{name}.build.backbone_layers: only a reward build keeps fewer blocks of its "
                            f"init, not a {build.get('kind')} build")
        on_policy = build.get("on_policy") or {}
        if on_policy and build.get("kind") != "reward":
            problems.append(f"models.{name}.build.on_policy: only a reward build collects on-policy pairs, "
                            f"not a {build.get('kind')} build")
        for k, policy in enumerate(on_policy.get("policies", [])):
            key = f"models.{name}.build.on_policy.policies[{k}]"
            if policy not in plan.models:
                problems.append(f"{key}: {policy!r} is not a `models` entry")
            expect(policy, lm, key, "the replies come from a causal LM (a pretrain or sft build, or a path)")
    unfrozen = plan.ppo.num_layers_unfrozen
    if plan.ppo.training.layers_trained is not None:
        problems.append("ppo.training.layers_trained: PPO trains its top layers by ppo.num_layers_unfrozen (and "
                        "its value head shares them); set that instead")
    for role in sorted({row.policy for rows in plan.tables.values() for row in rows if row.setting in PPO_SETTINGS}):
        layers = built_layers(plan, plan.policies.get(role))
        if unfrozen is not None and layers is not None and unfrozen > layers:
            problems.append(f"ppo.num_layers_unfrozen: {unfrozen} layers to train, but policies.{role} "
                            f"({plan.policies[role]}) has {layers}")
    return problems



def built_architecture(plan: "Plan", name: str | None) -> dict[str, Any] | None:
    """The architecture of a causal LM built here (an sft or reward build has its init's); None otherwise."""
    seen = set()
    while name in plan.models and "build" in plan.models[name] and name not in seen:
        seen.add(name)
        build = plan.models[name]["build"]
        if build["kind"] == "pretrain":
            return build["architecture"]
        name = build.get("init")
    return None



def built_layers(plan: "Plan", name: str | None) -> int | None:
    """Transformer blocks of a causal LM built here; None when it is not."""
    architecture = built_architecture(plan, name)
    return architecture["n_layer"] if architecture else None



def architecture_problems(plan: "Plan") -> list[str]:
    """Shapes a model built here cannot have, and lengths its positions cannot hold: heads that do not split the
    width (rotary heads of odd width), a build's or a policy's training length or a reply length beyond them."""
    problems = []
    for name, spec in plan.models.items():
        build = spec.get("build", {})
        if build.get("kind") != "pretrain":
            continue
        key, shape = f"models.{name}.build.architecture", build["architecture"]
        if shape["n_embd"] % shape["n_head"]:
            problems.append(f"{key}.n_head: {shape['n_head']} heads do not split n_embd {shape['n_embd']}")
        elif shape["family"] == "llama" and (shape["n_embd"] // shape["n_head"]) % 2:
            problems.append(f"{key}.n_head: heads of width {shape['n_embd'] // shape['n_head']}; rotary positions "
                            "need an even head width (n_embd / n_head)")
    lengths = {f"models.{name}.build.training.max_length": (name, spec["build"]["training"]["max_length"])
               for name, spec in plan.models.items() if spec.get("build", {}).get("kind") in ("pretrain", "sft")}
    for name in sorted(set(plan.policies.values())):
        lengths[f"rrhf.training.max_length (policy {name})"] = (name, plan.rrhf.training.max_length)
        lengths[f"ppo.training.max_length (policy {name})"] = (name, plan.ppo.training.max_length)
    for key, (name, length) in lengths.items():
        positions = (built_architecture(plan, name) or {}).get("n_positions")
        if positions and length > positions:
            problems.append(f"{key}: {length} tokens, but {name} has {positions} positions (n_positions)")
    replies = {f"sampling.samplers.{s}.max_new_tokens": plan.sampling.sampler(s).max_new_tokens
               for s in sorted({spec.get("sampler") for spec in plan.settings.values()} - {None})}
    replies["evaluation.decoding.max_new_tokens"] = plan.evaluation.decoding.max_new_tokens
    replies["evaluation.best_of_n.max_new_tokens"] = plan.evaluation.best_of_n.max_new_tokens
    for key, new_tokens in replies.items():
        for name in sorted(set(plan.policies.values())):
            positions = (built_architecture(plan, name) or {}).get("n_positions")
            if positions and new_tokens >= positions:
                problems.append(f"{key}: {new_tokens} new tokens leave no room for a prompt in the {positions} "
                                f"positions of policy {name}")
    return problems



def value_head_problems(plan: "Plan") -> list[str]:
    """A value-head checkpoint needs its path and backbone, and can only be the reward model."""
    problems = []
    for name, spec in plan.models.items():
        if spec.get("format", "transformers") != "value_head_checkpoint":
            continue
        if "path" not in spec or "backbone" not in spec:
            problems.append(f"models.{name}: format value_head_checkpoint needs `path` (the checkpoint) and "
                            "`backbone` (the folder or hub id of its config and tokenizer)")
        roles = [f"policies.{role}" for role, model in plan.policies.items() if model == name]
        roles += ["evaluation_model"] if plan.evaluation_model == name else []
        roles += [f"models.{other}.build.init" for other, o in plan.models.items()
                  if o.get("build", {}).get("init") == name]
        if roles:
            problems.append(f"models.{name}: a value_head_checkpoint model can only be the reward_model, "
                            f"but {', '.join(roles)} names it")
    return problems
