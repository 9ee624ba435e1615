"""RRHF training: each query with its K scored responses is one example.

Sequences (prompt + response + EOS) of a batch are flattened, sorted by length
and run through the model in chunks of similar length, so compute is not spent
padding every response to the longest of the batch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from rrhf.adapters import add_lora
from rrhf.io import start_job
from rrhf.losses import rank_accuracy, rank_pair_counts, rrhf_loss, sequence_scores
from rrhf.models import encode_pair, load_causal_lm, load_reward_model, resolve_device, span_logprobs
from rrhf.reward_monitor import RewardMonitor, monitor_prompts
from rrhf.training import TrainingParams, pad_batch, train_model
from rrhf.training_sets import read_scored_set

log = logging.getLogger("rrhf")
SCORED_COLUMNS = ["prompt_id", "prompt", "response_index", "response", "reward"]
# A chunk's longest sequence is at most this many times its shortest, so padding stays under ~1/6 of a chunk.
MAX_LENGTH_SPREAD = 1.2


@dataclass
class QueryExample:
    """One query: K token sequences (prompt + response + EOS), where each response starts, their rewards."""

    sequences: list[list[int]]
    starts: list[int]
    rewards: list[float]

    @property
    def length(self) -> int:
        return max(len(s) for s in self.sequences)


def build_examples(frame: pd.DataFrame, tokenizer, max_length: int) -> list[QueryExample]:
    """Group a scored training set by prompt into :class:`QueryExample` objects (prompt order kept)."""
    examples = []
    for _, group in frame.sort_values(["prompt_id", "response_index"]).groupby("prompt_id", sort=False):
        encoded = [encode_pair(tokenizer, p, r, max_length) for p, r in zip(group["prompt"], group["response"])]
        examples.append(QueryExample([e[0] for e in encoded], [e[1] for e in encoded],
                                     [float(r) for r in group["reward"]]))
    return examples


def collate_queries(examples: list[QueryExample], pad_token_id: int, max_tokens_per_forward: int,
                    max_length_spread: float = MAX_LENGTH_SPREAD) -> dict:
    """Tensors for a batch of B queries with up to K responses.

    Keys: ``rewards`` (B, K); ``starts``, ``lengths`` and ``slots`` (N,) for the
    N = sum of K_b sequences (``slots`` = b * K + k); and per chunk c of
    similar-length sequences, ``input_ids_c``/``attention_mask_c`` (n_c, L_c) and
    ``rows_c`` (n_c,), the sequences' positions in the flat list. A chunk holds at
    most ``max_tokens_per_forward`` padded tokens, and its longest sequence is at
    most ``max_length_spread`` times its shortest.
    """
    width = max(len(e.sequences) for e in examples)
    rewards = torch.zeros(len(examples), width)
    sequences, starts, slots = [], [], []
    for b, example in enumerate(examples):
        rewards[b, : len(example.rewards)] = torch.tensor(example.rewards)
        for k, (seq, start) in enumerate(zip(example.sequences, example.starts)):
            sequences.append(seq)
            starts.append(start)
            slots.append(b * width + k)
    batch = {"rewards": rewards, "starts": torch.tensor(starts), "slots": torch.tensor(slots),
             "lengths": torch.tensor([len(s) for s in sequences])}
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    chunk: list[int] = []
    chunks: list[list[int]] = []
    for i in order:  # ascending length: a chunk costs rows x its last (longest) length
        length = len(sequences[i])
        too_big = (len(chunk) + 1) * length > max_tokens_per_forward
        too_ragged = chunk and length > max_length_spread * len(sequences[chunk[0]])
        if chunk and (too_big or too_ragged):
            chunks.append(chunk)
            chunk = []
        chunk.append(i)
    chunks.append(chunk)
    for c, rows in enumerate(chunks):
        batch[f"input_ids_{c}"], batch[f"attention_mask_{c}"] = pad_batch([sequences[i] for i in rows], pad_token_id)
        batch[f"rows_{c}"] = torch.tensor(rows)
    return batch


def response_logprobs(model, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(token_logprobs, response_mask), each (B, K, T): log P of each response token, T = longest response."""
    starts, lengths = batch["starts"], batch["lengths"]
    batch_size, width = batch["rewards"].shape
    longest = int((lengths - starts).max())
    flat_logprobs = [None] * len(starts)
    c = 0
    while f"input_ids_{c}" in batch:
        input_ids = batch[f"input_ids_{c}"]
        logits = model(input_ids=input_ids, attention_mask=batch[f"attention_mask_{c}"]).logits
        rows = batch[f"rows_{c}"].tolist()
        spans = [(int(starts[row]), int(lengths[row])) for row in rows]
        for row, logprobs in zip(rows, span_logprobs(logits, input_ids, spans)):
            flat_logprobs[row] = logprobs
        c += 1
    out = torch.zeros(batch_size * width, longest, device=starts.device)
    mask = torch.zeros(batch_size * width, longest, dtype=torch.bool, device=starts.device)
    for row, slot in enumerate(batch["slots"].tolist()):
        n = flat_logprobs[row].shape[0]
        out[slot, :n] = flat_logprobs[row]
        mask[slot, :n] = True
    return out.view(batch_size, width, longest), mask.view(batch_size, width, longest)


def make_rrhf_loss(rank_weight: float, length_penalty: float, ft_reduction: str):
    """A ``compute_loss(model, batch)`` for :func:`rrhf.training.train_model`."""

    def compute_loss(model, batch):
        token_logprobs, mask = response_logprobs(model, batch)
        loss, rank_loss, ft_loss = rrhf_loss(token_logprobs, mask, batch["rewards"], rank_weight=rank_weight,
                                             length_penalty=length_penalty, ft_reduction=ft_reduction)
        scores = sequence_scores(token_logprobs.detach(), mask, length_penalty)
        accuracy = rank_accuracy(scores, batch["rewards"], mask.any(-1))
        return loss, {"rank_loss": float(rank_loss.detach()), "ft_loss": float(ft_loss.detach()),
                      "rank_accuracy": accuracy}

    return compute_loss


@torch.no_grad()
def policy_rank_accuracy(model, tokenizer, frame: pd.DataFrame, max_length: int, length_penalty: float = 1.0,
                         batch_size: int = 8) -> float:
    """How often ``model``'s length-normalised log-probabilities order a scored set's responses like the rewards."""
    examples = build_examples(frame, tokenizer, max_length)
    device = next(model.parameters()).device
    right = total = 0
    for start in range(0, len(examples), batch_size):
        batch = {key: value.to(device) for key, value in
                 collate_queries(examples[start:start + batch_size], tokenizer.pad_token_id, 1 << 20).items()}
        token_logprobs, mask = response_logprobs(model, batch)
        counts = rank_pair_counts(sequence_scores(token_logprobs, mask, length_penalty), batch["rewards"],
                                  mask.any(-1))
        right, total = right + counts[0], total + counts[1]
    return right / total if total else float("nan")


def run_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """Steps, final loss and mean rank accuracy of the first and last epoch, from an RRHF run's log rows."""
    first_epoch, last_epoch = rows[rows["epoch"] <= 1], rows[rows["epoch"] > rows["epoch"].max() - 1]
    return {"steps": len(rows), "final_loss": float(rows["loss"].iloc[-1]),
            "rank_accuracy_first_epoch": float(first_epoch["rank_accuracy"].mean()),
            "rank_accuracy_last_epoch": float(last_epoch["rank_accuracy"].mean())}


def reward_monitor(reward_model, settings: dict[str, Any] | None, tokenizer, frame: pd.DataFrame,
                   dataset_source: str | None, dtype: str) -> RewardMonitor | None:
    """The monitor of the policy's greedy reward on ``settings["prompts"]`` training prompts every
    ``settings["every_steps"]`` steps; None when off (no reward model, or every_steps 0)."""
    if reward_model is None or not settings or not settings.get("every_steps"):
        return None
    scorer, scorer_tokenizer = load_reward_model(reward_model, resolve_device("auto"), dtype)
    return RewardMonitor(scorer, scorer_tokenizer, tokenizer, monitor_prompts(frame, settings["prompts"]),
                         settings["every_steps"], settings["max_new_tokens"], dataset_source)


def train_rrhf(policy: str, scored: str, output_dir: str, training: dict[str, Any], rank_weight: float = 1.0,
               length_penalty: float = 1.0, ft_reduction: str = "token_mean", max_tokens_per_forward: int = 4096,
               reward_model: str | dict[str, Any] | None = None,
               reward_during_training: dict[str, Any] | None = None, dataset_source: str | None = None,
               dtype: str = "auto", checkpoint: dict[str, Any] | None = None,
               log_path: str | None = None) -> dict[str, float]:
    """Stage entry point: RRHF-train ``policy`` on a scored training set; save it, its log and metrics.

    Writes ``output_dir``/model.safetensors (+ config, tokenizer), ``train_log.parquet``
    (step, epoch, loss, rank_loss, ft_loss, rank_accuracy, lr; with ``reward_during_training``
    ``{every_steps, prompts, max_new_tokens}`` and a ``reward_model`` also reward and gold_reward at those
    steps, see rrhf.reward_monitor) and ``metrics.json``.
    """
    start_job(log_path, output_dir)
    params = TrainingParams.from_config(training)
    frame = read_scored_set(scored, SCORED_COLUMNS)  # raises naming NaN / non-numeric rewards, repeated rows
    model, tokenizer = load_causal_lm(policy)
    model = add_lora(model, params.lora)
    examples = build_examples(frame, tokenizer, params.max_length)
    log.info("RRHF on %s: %d queries, %d responses, rank_weight %s, length_penalty %s, ft %s",
             scored, len(examples), len(frame), rank_weight, length_penalty, ft_reduction)
    result = train_model(model, examples, [e.length for e in examples],
                         lambda b: collate_queries(b, tokenizer.pad_token_id, max_tokens_per_forward),
                         make_rrhf_loss(rank_weight, length_penalty, ft_reduction), params, "rrhf", checkpoint,
                         reward_monitor(reward_model, reward_during_training, tokenizer, frame, dataset_source, dtype))
    metrics = {**run_metrics(pd.DataFrame(result.rows)), "queries": len(examples), "responses": len(frame),
               "rank_weight": rank_weight, "length_penalty": length_penalty, "ft_reduction": ft_reduction}
    log.info("RRHF done: %s", metrics)
    result.save(output_dir, tokenizer, {"stage": "train_rrhf", "policy": policy, "scored": scored,
                                        "training": training}, metrics)
    return metrics
