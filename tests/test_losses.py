"""rrhf_loss and rank_accuracy against values worked out by hand."""

import math

import pytest
import torch

from rrhf.losses import rank_accuracy, rrhf_loss, sequence_scores

PAD = 99.0  # padding log-probs: any leak through the mask would show


def one_query():
    """Three responses of 2, 3 and 1 tokens.

    sums: -4, -3, -4; length-normalised p: -2, -1, -4.
    """
    logprobs = torch.tensor([[[-1.0, -3.0, PAD], [-0.5, -0.5, -2.0], [-4.0, PAD, PAD]]])
    mask = torch.tensor([[[1, 1, 0], [1, 1, 1], [1, 0, 0]]], dtype=torch.bool)
    return logprobs, mask


def test_sequence_scores_normalise_by_length():
    logprobs, mask = one_query()
    assert sequence_scores(logprobs, mask, 1.0).tolist() == [[-2.0, -1.0, -4.0]]
    assert sequence_scores(logprobs, mask, 0.0).tolist() == [[-4.0, -3.0, -4.0]]


def test_rank_and_ft_loss_by_hand():
    logprobs, mask = one_query()
    rewards = torch.tensor([[2.0, 0.5, 1.0]])  # r1 < r2 < r0
    loss, rank, ft = rrhf_loss(logprobs, mask, rewards)
    # pairs (worse, better): (1,2): max(0, -1 - -4) = 3; (1,0): max(0, -1 - -2) = 1; (2,0): max(0, -4 - -2) = 0
    assert rank.item() == pytest.approx(4.0)
    # best response is 0 (reward 2): token-mean NLL = 4 / 2
    assert ft.item() == pytest.approx(2.0)
    assert loss.item() == pytest.approx(6.0)


def test_length_penalty_zero_uses_sums():
    logprobs, mask = one_query()
    _, rank, _ = rrhf_loss(logprobs, mask, torch.tensor([[2.0, 0.5, 1.0]]), length_penalty=0.0)
    # p = -4, -3, -4: (1,2): 1; (1,0): 1; (2,0): 0
    assert rank.item() == pytest.approx(2.0)


def test_sum_reduction_and_rank_weight_zero():
    logprobs, mask = one_query()
    rewards = torch.tensor([[2.0, 0.5, 1.0]])
    loss, rank, ft = rrhf_loss(logprobs, mask, rewards, rank_weight=0.0, ft_reduction="sum")
    assert ft.item() == pytest.approx(4.0)
    assert rank.item() == pytest.approx(4.0)  # still reported
    assert loss.item() == pytest.approx(4.0)  # but not added
    with pytest.raises(ValueError, match="ft_reduction"):
        rrhf_loss(logprobs, mask, rewards, ft_reduction="mean")


def test_ties_give_no_rank_loss_and_first_best_is_used():
    logprobs, mask = one_query()
    rewards = torch.tensor([[1.0, 1.0, 0.0]])  # 0 and 1 tie for best
    _, rank, ft = rrhf_loss(logprobs, mask, rewards)
    # only pairs with r_i < r_j: (2,0): max(0, -4 - -2) = 0; (2,1): max(0, -4 - -1) = 0; the tie adds nothing
    assert rank.item() == 0.0
    assert ft.item() == pytest.approx(2.0)  # response 0, the first of the tied best
    equal = torch.tensor([[0.3, 0.3, 0.3]])
    assert rrhf_loss(logprobs, mask, equal)[1].item() == 0.0


def test_mean_over_queries_and_placeholder_responses():
    logprobs, mask = one_query()
    second_logprobs = torch.tensor([[[-1.0, PAD, PAD], [-2.0, -2.0, PAD], [PAD, PAD, PAD]]])
    second_mask = torch.tensor([[[1, 0, 0], [1, 1, 0], [0, 0, 0]]], dtype=torch.bool)  # third is a placeholder
    rewards = torch.tensor([[2.0, 0.5, 1.0], [0.0, 1.0, 5.0]])
    loss, rank, ft = rrhf_loss(torch.cat([logprobs, second_logprobs]), torch.cat([mask, second_mask]), rewards)
    # query 2: p = -1, -2; r0 < r1 so max(0, -1 - -2) = 1; best real response is 1: NLL 4 / 2 = 2
    assert rank.item() == pytest.approx((4.0 + 1.0) / 2)
    assert ft.item() == pytest.approx((2.0 + 2.0) / 2)


def test_gradients_by_hand():
    logprobs, mask = one_query()
    logprobs.requires_grad_(True)
    loss, _, _ = rrhf_loss(logprobs, mask, torch.tensor([[2.0, 0.5, 1.0]]))
    loss.backward()
    # rank = (p1 - p2) + (p1 - p0): dL/dp1 = 2, dL/dp2 = -1, dL/dp0 = -1; dp_i/dtoken = 1/n_i.
    # ft = -(sum of response 0) / 2 adds -1/2 to response 0's tokens.
    expected = torch.tensor([[[-1.0, -1.0, 0.0], [2 / 3, 2 / 3, 2 / 3], [-1.0, 0.0, 0.0]]])
    assert torch.allclose(logprobs.grad, expected)


def test_rank_accuracy():
    rewards = torch.tensor([[0.0, 1.0, 2.0]])
    assert rank_accuracy(torch.tensor([[-3.0, -2.0, -1.0]]), rewards) == 1.0
    assert rank_accuracy(torch.tensor([[-1.0, -2.0, -3.0]]), rewards) == 0.0
    assert rank_accuracy(torch.tensor([[-1.0, -3.0, -2.0]]), rewards) == pytest.approx(1 / 3)
    assert math.isnan(rank_accuracy(torch.zeros(1, 3), torch.ones(1, 3)))
    valid = torch.tensor([[True, True, False]])
    assert rank_accuracy(torch.tensor([[-3.0, -2.0, -9.0]]), rewards, valid) == 1.0
