"""Checks a config block can make on its own, without the plan of a run: the plan runs them before any job, and
the stages that take such a block directly (a notebook, a test) run them again."""

from __future__ import annotations


def ppo_length_problems(max_length: int, max_new_tokens: int) -> list[str]:
    """PPO's prompt needs room: ppo.training.max_length must exceed ppo.generation.max_new_tokens."""
    if max_length > max_new_tokens:
        return []
    return [f"ppo.training.max_length must exceed ppo.generation.max_new_tokens, as the prompt keeps the "
            f"difference: ppo.training.max_length ({max_length}) must exceed {max_new_tokens}"]


def lora_pretrain_problem(key: str) -> str:
    return f"{key}.lora: a pretrain build trains a new model in full; LoRA adapts a trained one (remove the key)"


def lora_fsdp_problem(key: str, where: str) -> str:
    return (f"{key}.lora: LoRA with FSDP ({where}) is not supported: {key}.lora is for one GPU or DDP and cannot "
            "be combined with FSDP, as merging the adapters needs whole weights; use envs/accelerate/ddp.yaml, or "
            "accelerate_config null on one GPU")
