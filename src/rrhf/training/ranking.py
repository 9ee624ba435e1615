"""RRHF's objective in the training loop: the ``compute_loss`` of offline and online RRHF and the metrics of a run."""

from __future__ import annotations

import pandas as pd

from rrhf.batching.query_batches import response_logprobs
from rrhf.losses import rank_accuracy, rrhf_loss, sequence_scores


def make_rrhf_loss(rank_weight: float, length_penalty: float, ft_reduction: str):
    """A ``compute_loss(model, batch)`` for :func:`rrhf.training.loop.train_model`."""

    def compute_loss(model, batch):
        token_logprobs, mask = response_logprobs(model, batch)
        loss, rank_loss, ft_loss = rrhf_loss(token_logprobs, mask, batch["rewards"], rank_weight=rank_weight,
                                             length_penalty=length_penalty, ft_reduction=ft_reduction)
        scores = sequence_scores(token_logprobs.detach(), mask, length_penalty)
        accuracy = rank_accuracy(scores, batch["rewards"], mask.any(-1))
        return loss, {"rank_loss": float(rank_loss.detach()), "ft_loss": float(ft_loss.detach()),
                      "rank_accuracy": accuracy}

    return compute_loss



def run_metrics(rows: pd.DataFrame) -> dict[str, float]:
    """Steps, final loss and mean rank accuracy of the first and last epoch, from an RRHF run's log rows."""
    first_epoch, last_epoch = rows[rows["epoch"] <= 1], rows[rows["epoch"] > rows["epoch"].max() - 1]
    return {"steps": len(rows), "final_loss": float(rows["loss"].iloc[-1]),
            "rank_accuracy_first_epoch": float(first_epoch["rank_accuracy"].mean()),
            "rank_accuracy_last_epoch": float(last_epoch["rank_accuracy"].mean())}
