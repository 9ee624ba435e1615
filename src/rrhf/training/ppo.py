"""PPO training of a policy against the reward model, with trlX's HH settings (rrhf.training.ppo_parts has the pieces).

Each iteration samples ``num_rollouts`` responses (``chunk_size`` prompts at a
time), cuts them at the next "Human:"/"Assistant:" turn, scores them, and then
runs ``ppo_epochs`` passes of minibatch updates over them through the shared
training loop (:class:`rrhf.training.loop.Trainer`). The MDP is token-level: each
response token is an action whose reward is -kl_coef * (log pi - log rho), and
the last one also gets the reward model's (clipped, scaled) score of the whole
response. Dropout is off throughout, so the rollout's log-probabilities are
those the update starts from.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import pandas as pd
import torch
from accelerate.utils import set_seed

from rrhf.config.block_checks import ppo_length_problems
from rrhf.config.blocks import PPO, Precision, PromptSubset, Scoring
from rrhf.data.dataset_facts import gold_source
from rrhf.data.gold_reward import gold_rewards
from rrhf.data.preference_pairs import select_subset
from rrhf.io import read_parquet, start_job
from rrhf.losses import policy_loss, value_loss
from rrhf.models.adapters import add_lora
from rrhf.models.loading import load_causal_lm_for_training, load_reward_model
from rrhf.models.token_spans import span_logprobs, span_logprobs_and_entropies
from rrhf.models.value_head_policy import CausalLMWithValueHead, FrozenReference, freeze_bottom_layers
from rrhf.padding import pad_batch, pad_values
from rrhf.sampling.rollouts import sample_actions
from rrhf.scoring.rewards import score
from rrhf.scoring.segment_rewards import fine_grained_token_rewards, load_segment_rewarder, token_offsets
from rrhf.training.loop import Trainer, micro_batches_per_epoch
from rrhf.training.ppo_parts import (
    RunningMoments,
    advantages_and_returns,
    kl_controller,
    scale_scores,
    sequence_kl,
    token_rewards,
    whiten,
)
from rrhf.training.tracking import TrainingTrackers

log = logging.getLogger("rrhf")


@dataclass
class Rollout:
    """One sampled response: prompt + response token ids, where the response starts, and per action (n,)
    its log-probability and value under the rollout policy and its reward."""

    sequence: list[int]
    start: int
    logprobs: torch.Tensor
    values: torch.Tensor
    rewards: torch.Tensor


def action_tensors(logits: torch.Tensor, values: torch.Tensor, input_ids: torch.Tensor,
                   spans: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logprobs, values, mask), each (B, T), of the response tokens (actions) of each row.

    logits: (B, L, V) and values: (B, L) of the model on input_ids (B, L); spans:
    (start, end) of each row's response. The action at t is scored by the
    logits and value at t - 1 (the state it is taken in).
    """
    logprobs, mask = pad_values(span_logprobs(logits, input_ids, spans))
    return logprobs, action_values(values, spans), mask


def action_values(values: torch.Tensor, spans: list[tuple[int, int]]) -> torch.Tensor:
    """(B, T) values of the states the response tokens are taken in: values[b, t - 1] for t in each span."""
    return pad_values([values[row, start - 1:end - 1] for row, (start, end) in enumerate(spans)])[0]


def collate_rollouts(rollouts: list[Rollout], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Tensors of a minibatch: input_ids / attention_mask (B, L); starts, ends (B,); old_logprobs,
    old_values, rewards and mask (B, T)."""
    input_ids, attention_mask = pad_batch([r.sequence for r in rollouts], pad_token_id)
    old_logprobs, mask = pad_values([r.logprobs for r in rollouts])
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "starts": torch.tensor([r.start for r in rollouts]),
            "ends": torch.tensor([len(r.sequence) for r in rollouts]),
            "old_logprobs": old_logprobs, "old_values": pad_values([r.values for r in rollouts])[0],
            "rewards": pad_values([r.rewards for r in rollouts])[0], "mask": mask}


def make_ppo_loss(gamma: float, lam: float, cliprange: float, cliprange_value: float, vf_coef: float):
    """A ``compute_loss(model, batch)`` for :meth:`rrhf.training.loop.Trainer.run_epochs`: the clipped surrogate
    plus vf_coef times the clipped value loss, with GAE advantages whitened over the minibatch (as trlX)."""

    def compute_loss(model, batch):
        logits, values = model(batch["input_ids"], batch["attention_mask"])
        spans = list(zip(batch["starts"].tolist(), batch["ends"].tolist()))
        logprobs, values, _ = action_tensors(logits, values, batch["input_ids"], spans)
        mask = batch["mask"]
        advantages, returns = advantages_and_returns(batch["old_values"], batch["rewards"], mask, gamma, lam)
        advantages = whiten(advantages, mask)
        pg_loss, clip_fraction, approx_kl = policy_loss(logprobs, batch["old_logprobs"], advantages, mask, cliprange)
        vf_loss, value_clip_fraction = value_loss(values, batch["old_values"], returns, mask, cliprange_value)
        return pg_loss + vf_coef * vf_loss, {"policy_loss": float(pg_loss.detach()),
                                             "value_loss": float(vf_loss.detach()), "clip_fraction": clip_fraction,
                                             "value_clip_fraction": value_clip_fraction, "approx_kl": approx_kl}

    return compute_loss


@dataclass
class RolloutContext:
    """What collecting rollouts needs besides the prompts."""

    policy: CausalLMWithValueHead
    tokenizer: Any
    reference: FrozenReference
    reward_model: Any
    reward_tokenizer: Any
    moments: RunningMoments
    ppo: PPO
    scoring: Scoring
    max_prompt_tokens: int
    gold_source: str | None
    segment_rewarder: Any = None  # rrhf.scoring.segment_rewards.SegmentRewarder: fine-grained PPO
    reward_scaling: str = "running"


@torch.no_grad()
def collect_rollouts(context: RolloutContext, prompts: list[str], chosen: list[str], kl_coef: float,
                     seed: int) -> tuple[list[Rollout], dict[str, float]]:
    """Sample, score and evaluate one rollout per prompt, ``chunk_size`` at a time; return them and the
    iteration's rollout statistics (reward, score, gold reward, KL, response length, entropy)."""
    ppo, policy = context.ppo, context.policy
    rollouts, stats = [], {key: [] for key in ("reward", "score", "gold_reward", "kl", "response_length",
                                               "entropy")}
    scoring = context.scoring
    for chunk_start in range(0, len(prompts), ppo.chunk_size):
        chunk = slice(chunk_start, chunk_start + ppo.chunk_size)
        samples = sample_actions(policy.lm, context.tokenizer, prompts[chunk], ppo.generation,
                                 context.max_prompt_tokens, seed + chunk_start)
        texts = [text for _, _, text in samples]

        def rewards_of(replies: list[str]) -> torch.Tensor:
            return torch.tensor(score(context.reward_model, context.reward_tokenizer, prompts[chunk], replies,
                                      scoring.batch_size, scoring.max_length, prompt_sharing=scoring.prompt_sharing))

        rewards = rewards_of(texts)
        fine_grained = context.segment_rewarder is not None
        scores = rewards - rewards_of(chosen[chunk]) if ppo.delta_reward and not fine_grained else rewards
        sequences = [p + r for p, r, _ in samples]
        spans = [(len(p), len(p) + len(r)) for p, r, _ in samples]
        device = next(policy.parameters()).device
        input_ids, attention_mask = (t.to(device) for t in pad_batch(sequences, context.tokenizer.pad_token_id))
        logits, values = policy(input_ids, attention_mask)
        token_logprobs, entropies = span_logprobs_and_entropies(logits, input_ids, spans)
        logprobs, mask = pad_values(token_logprobs)
        values = action_values(values.float(), spans)  # float32 as the update reads them, whatever autocast gave
        ref_logprobs, _ = pad_values(span_logprobs(context.reference.logits(policy, input_ids, attention_mask),
                                                 input_ids, spans))
        if fine_grained:  # a reward at the end of every segment (rrhf.scoring.segment_rewards)
            rewarder = context.segment_rewarder
            raw = pad_values([rewarder.rewards(judged, token_offsets(context.tokenizer, response), len(response))
                              for judged, (_, response, _) in zip(rewarder.judge(prompts[chunk], texts), samples)])[0]
            scores = raw.sum(-1)
            per_token = fine_grained_token_rewards(raw.to(device), logprobs, ref_logprobs, mask, kl_coef,
                                                   context.reward_scaling, context.moments)
        else:
            scaled = scale_scores(scores.to(device), context.moments, ppo.scale_reward, ppo.cliprange_reward)
            per_token = token_rewards(logprobs, ref_logprobs, mask, scaled, kl_coef)
        for row, (sequence, (start, end)) in enumerate(zip(sequences, spans)):
            n = end - start
            rollouts.append(Rollout(sequence, start, logprobs[row, :n].cpu(), values[row, :n].cpu(),
                                    per_token[row, :n].cpu()))
        frame = pd.DataFrame({"prompt": prompts[chunk], "response": texts})
        stats["reward"] += rewards.tolist()
        stats["score"] += scores.tolist()
        stats["gold_reward"] += gold_rewards(frame, context.gold_source)
        stats["kl"] += sequence_kl(logprobs, ref_logprobs, mask).tolist()
        stats["response_length"] += [end - start for start, end in spans]
        stats["entropy"] += [float(e.mean()) for e in entropies]
    return rollouts, {key: float(pd.Series(values, dtype=float).mean()) for key, values in stats.items()}


def ppo_schedule(ppo: PPO) -> tuple[int, int]:
    """(iterations, optimiser steps per iteration) that make at least ``ppo.total_steps`` optimiser steps."""
    params = ppo.training
    micro_batches = micro_batches_per_epoch(ppo.num_rollouts, params.batch_size, processes=1)
    # Each iteration's last micro-batches step even when they do not fill an accumulation group (run_epochs).
    per_iteration = -(-ppo.ppo_epochs * micro_batches // params.gradient_accumulation_steps)
    return -(-ppo.total_steps // per_iteration), per_iteration


def prompt_stream(count: int, seed: int):
    """Indices 0..count-1 in a seeded shuffled order, reshuffled on every pass, forever."""
    rng = random.Random(seed)
    while True:
        order = list(range(count))
        rng.shuffle(order)
        yield from order


def train_ppo(policy: str, reward_model: str | dict[str, Any], train_data: str, output_dir: str,
              ppo: PPO | dict[str, Any], scoring: Scoring | dict[str, Any], prompts: PromptSubset | dict[str, Any],
              precision: Precision | dict[str, Any], checkpoint: dict[str, Any] | None = None,
              tracking: dict[str, Any] | None = None, fine_grained: dict[str, Any] | None = None,
              log_path: str | None = None) -> dict[str, Any]:
    """Stage entry point: PPO-train ``policy`` (the ``ppo`` block) on the selected training ``prompts``, rewards
    scored with ``scoring``; save it, its value head, a per-iteration ``train_log.parquet`` and ``metrics.json``.

    The log has one row per iteration: iteration, step, reward (reward-model score),
    score (what PPO maximises: the reward, or its gap to the dataset's chosen reply
    with ``delta_reward``), gold_reward (NaN where the training data records no dataset with one), kl,
    kl_coef, policy_loss, value_loss, clip_fraction, value_clip_fraction, approx_kl,
    entropy, response_length and lr. With ``checkpoint`` settings it saves a checkpoint at the end of an
    iteration once one is due (rollouts are not saved, so an iteration is the unit) and a restarted job
    resumes after the last saved iteration.

    With ``fine_grained`` (fine-grained PPO: ``models``, kind -> reward model folder; ``weights``;
    ``reward_scaling``; ``marker_position`` and ``max_length`` of the reward models) the reward is a reward
    at the end of every segment (rrhf.scoring.segment_rewards) instead of the reward model's score at the end
    of the reply; ``reward`` in the log is still the reward model's, ``score`` the summed segment rewards.
    """
    start_job(log_path, output_dir)
    ppo, scoring, precision = PPO.coerce(ppo), Scoring.coerce(scoring), Precision.coerce(precision)
    params = ppo.training
    if problems := ppo_length_problems(params.max_length, ppo.generation.max_new_tokens):
        raise ValueError(problems[0])
    frame = select_subset(read_parquet(train_data, ["prompt_id", "prompt", "chosen"]), prompts, origin=train_data)
    lm, tokenizer = load_causal_lm_for_training(policy)
    if params.lora is None:
        freeze_bottom_layers(lm, ppo.num_layers_unfrozen)
    elif ppo.num_layers_unfrozen is not None:
        log.warning("ppo.num_layers_unfrozen is not used with training.lora: every base weight is frozen and "
                    "every layer gets adapters")
    set_seed(params.seed)  # the value head is initialised here (then the adapters, with LoRA)
    model = CausalLMWithValueHead(lm, ppo.generation.temperature)
    add_lora(model, params.lora)
    iterations, per_iteration = ppo_schedule(ppo)
    trainer = Trainer(model, params, precision, iterations * per_iteration, "ppo", checkpoint)
    # PPO's log is one row per iteration (its optimiser steps summed up): those rows are what the trackers get.
    trackers = TrainingTrackers(tracking, output_dir, trainer.accelerator.is_main_process)
    trainer.model.eval()  # no dropout: rollout and update see the same policy
    device = trainer.accelerator.device
    policy_model = trainer.accelerator.unwrap_model(trainer.model)
    # rho: taken from the prepared policy (where training put it), before any step; with LoRA, the adapters off.
    reference = FrozenReference(policy_model.lm)
    reward, reward_tokenizer = load_reward_model(reward_model, device, precision.dtype)
    reward.requires_grad_(False)
    context = RolloutContext(policy_model, tokenizer, reference, reward, reward_tokenizer, RunningMoments(), ppo,
                             scoring, params.max_length - ppo.generation.max_new_tokens, gold_source(train_data))
    if fine_grained is not None:
        context.segment_rewarder = load_segment_rewarder(
            fine_grained["models"], fine_grained["weights"], fine_grained["marker_position"],
            fine_grained["max_length"], device)
        context.reward_scaling = fine_grained["reward_scaling"]
    controller = kl_controller(ppo.kl)
    trainable = sum(p.numel() for p in policy_model.parameters() if p.requires_grad)
    log.info("PPO on %s: %d prompts, %d iterations of %d rollouts, %d steps each; %d trainable parameters, "
             "reference holds %d", policy, len(frame), iterations, ppo.num_rollouts, per_iteration, trainable,
             reference.parameter_count)
    stream = prompt_stream(len(frame), params.seed)
    prompts, chosen = list(frame["prompt"]), list(frame["chosen"])
    loss = make_ppo_loss(ppo.gamma, ppo.lam, ppo.cliprange, ppo.cliprange_value, ppo.vf_coef)
    collate = partial(collate_rollouts, pad_token_id=tokenizer.pad_token_id)
    state = trainer.resume() or {"iterations": [], "kl_controller": vars(controller),
                                 "moments": vars(context.moments)}
    rows = state["iterations"]
    for row in rows:  # the iterations before a resumed checkpoint
        trackers.log(row)
    vars(controller).update(state["kl_controller"])
    vars(context.moments).update(state["moments"])
    for _ in range(len(rows) * ppo.num_rollouts):  # the prompts the saved iterations drew
        next(stream)
    for iteration in range(len(rows), iterations):
        picked = [next(stream) for _ in range(ppo.num_rollouts)]
        kl_coef = controller.value
        with trainer.accelerator.autocast():  # rollouts in the precision the updates compute in
            rollouts, stats = collect_rollouts(context, [prompts[i] for i in picked], [chosen[i] for i in picked],
                                               kl_coef, params.seed + 1000 * iteration)
        steps, lengths = [], [len(r.sequence) for r in rollouts]
        for epoch in range(ppo.ppo_epochs):
            steps += trainer.run_epochs(rollouts, lengths, collate, loss, 1,
                                        params.seed + iteration * ppo.ppo_epochs + epoch)
            controller.update(stats["kl"], params.batch_size)  # as trlX: after each PPO epoch, n_steps = batch size
        losses = pd.DataFrame(steps).mean(numeric_only=True)
        rows.append({"iteration": iteration + 1, "step": len(trainer.rows), **stats, "kl_coef": kl_coef,
                     **{key: float(losses[key]) for key in ("policy_loss", "value_loss", "clip_fraction",
                                                            "value_clip_fraction", "approx_kl", "lr")}})
        trackers.log(rows[-1])
        log.info("PPO iteration %d/%d: reward %.4f gold %.4f kl %.3f kl_coef %.4f", iteration + 1, iterations,
                 stats["reward"], stats["gold_reward"], stats["kl"], kl_coef)
        trainer.checkpoint(lambda: {"iterations": rows, "kl_controller": vars(controller),
                                    "moments": vars(context.moments)})
    result = trainer.finish()  # its rows are per optimiser step; the saved log is per iteration
    table = pd.DataFrame(rows)
    metrics = {"iterations": iterations, "steps": len(trainer.rows), "prompts": len(frame),
               "trainable_parameters": trainable, "reference_parameters": reference.parameter_count,
               **{f"first_{key}": float(table[key].iloc[0]) for key in ("reward", "gold_reward", "kl")},
               **{f"last_{key}": float(table[key].iloc[-1]) for key in ("reward", "gold_reward", "kl", "kl_coef")}}
    log.info("PPO done: %s", metrics)
    provenance = {"stage": "train_ppo", "policy": policy, "data": [train_data], "reward_model": reward_model,
                  "ppo": ppo.as_config(), "fine_grained": fine_grained}
    replace(result, rows=rows, trackers=trackers).save(output_dir, tokenizer, provenance, metrics)
    return metrics
