"""The preference losses of rrhf.losses against the field's reference implementation, TRL (the `test` extra,
pinned in requirements.lock), on the same log-probabilities, to 1e-6; and R-DPO, which TRL lacks, against its
paper's formula by hand.

TRL 1.16 keeps DPO's and KTO's losses inside their trainers' ``_compute_loss``: the tests run that very code on a
stub model whose per-token log-probabilities sum to the values given, with the reference log-probabilities
precomputed, so no model runs. CPO's (SimPO, SLiC's hinge) and ORPO's losses are methods that take log-probs.

Those are private methods and experimental modules, which TRL moves or removes without notice. Each test looks its
reference up through :func:`trl_reference` and calls it through :func:`run_reference`: where the TRL installed is
not the pinned one and the reference is gone or no longer takes what the test gives it, the test is skipped with
a reason that names the API and both versions. With the pinned TRL, any such failure is a failure.
"""

import importlib
import os
import re
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from rrhf.losses import (
    dpo_loss,
    ipo_loss,
    kto_loss,
    kto_reference_point,
    orpo_loss,
    simpo_loss,
    slic_loss,
)
from workflow_helpers import REPO

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
PINNED_TRL = re.search(r"^trl==(\S+)$", (REPO / "requirements.lock").read_text(), re.M).group(1)


def trl_reference(module: str, qualified_name: str):
    """TRL's ``module.qualified_name`` (e.g. "trl.experimental.cpo", "CPOTrainer.cpo_loss"); skips the test, naming
    what is missing, where TRL is not installed or has no such thing."""
    trl = pytest.importorskip("trl", reason=f"TRL, the reference, is not installed (make setup installs "
                                            f"trl=={PINNED_TRL} from requirements.lock)")
    where = f"{module}.{qualified_name}"
    try:
        found = importlib.import_module(module)
        for part in qualified_name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as error:
        pytest.skip(f"TRL {trl.__version__} has no {where} ({error}); this reference test is written against "
                    f"TRL {PINNED_TRL}, the version requirements.lock pins")
    return found


def run_reference(where: str, call, *args, **kwargs):
    """``call(*args, **kwargs)``; where TRL is not the pinned version and the call fails as an API that changed
    fails (a missing attribute, argument or key), the test is skipped with the reason, not failed."""
    import trl

    try:
        return call(*args, **kwargs)
    except (AttributeError, TypeError, KeyError) as error:
        if trl.__version__ == PINNED_TRL:
            raise
        pytest.skip(f"TRL {trl.__version__}'s {where} no longer takes what this test gives it ({error!r}); "
                    f"the test is written against TRL {PINNED_TRL}, the version requirements.lock pins")


ACCELERATOR = SimpleNamespace(device=torch.device("cpu"), gather_for_metrics=lambda x: x, gather=lambda x: x)
TOLERANCE = 1e-6


@pytest.fixture
def pairs():
    """Summed log-probabilities of 6 pairs (policy and reference, chosen and rejected) and reply lengths."""
    generator = torch.Generator().manual_seed(0)
    logps = [-torch.rand(6, generator=generator, dtype=torch.float64) * 8 for _ in range(4)]
    lengths = [torch.tensor([3, 5, 2, 7, 1, 4]), torch.tensor([4, 1, 6, 2, 3, 4])]
    return (*logps, *lengths)


class SummedLogprobModel(torch.nn.Module):
    """Stands in for the policy in TRL's ``_compute_loss``: each row's per-token log-probabilities are zero but at
    its first completion token, which holds the row's value (looked up by the row's first input id), so they sum
    to it."""

    def __init__(self, values: torch.Tensor):
        super().__init__()
        self.values = values

    def forward(self, input_ids, attention_mask=None, labels=None, **_):
        completion = labels[:, 1:] != -100
        first = completion.int().cumsum(1).eq(1) & completion
        logps = first.to(self.values.dtype) * self.values[input_ids[:, 0]][:, None]
        zeros = torch.zeros_like(logps)
        return SimpleNamespace(log_probs=logps, entropy=zeros, mean_logits=zeros, is_top1=torch.zeros_like(completion),
                               aux_loss=None)


def rows(codes: torch.Tensor, lengths: torch.Tensor, prompt: int = 2) -> dict[str, torch.Tensor]:
    """A batch of rows: ``prompt`` tokens then ``lengths`` completion tokens; the first id names the row."""
    ids = torch.ones(len(codes), prompt + int(lengths.max()), dtype=torch.long)
    ids[:, 0] = codes
    attention, completion = torch.zeros_like(ids), torch.zeros_like(ids)
    for row, length in enumerate(lengths.tolist()):
        attention[row, :prompt + length] = 1
        completion[row, prompt:prompt + length] = 1
    return {"input_ids": ids, "attention_mask": attention, "completion_mask": completion}


def trainer_state(**values) -> dict:
    return {"accelerator": ACCELERATOR, "precompute_ref_logps": True, "aux_loss_enabled": False,
            "_metrics": {"train": defaultdict(list), "eval": defaultdict(list)}, "_total_train_tokens": 0,
            "_tp_size": 1, **values}


def trl_dpo(loss_type, beta, policy_chosen, policy_rejected, reference_chosen, reference_rejected,
            chosen_lengths, rejected_lengths):
    """TRL's DPO loss (its ``_compute_loss``, the batch mean) on these log-probabilities."""
    values = torch.cat([policy_chosen, policy_rejected])
    model = SummedLogprobModel(values)
    state = SimpleNamespace(**trainer_state(
        model=model, ld_alpha=None, f_divergence_type="reverse_kl", loss_types=[loss_type], loss_weights=[1.0],
        beta=beta, label_smoothing=0.0, use_weighting=False,
        args=SimpleNamespace(discopop_tau=0.05, gradient_checkpointing_kwargs=None)))
    inputs = rows(torch.arange(len(values)), torch.cat([chosen_lengths, rejected_lengths]))
    inputs |= {"ref_chosen_logps": reference_chosen, "ref_rejected_logps": reference_rejected}
    compute_loss = trl_reference("trl", "DPOTrainer._compute_loss")
    return run_reference("DPOTrainer._compute_loss", compute_loss, state, model, inputs, return_outputs=False)


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_equals_trls_sigmoid_loss(pairs, beta):
    policy_c, policy_r, reference_c, reference_r, length_c, length_r = pairs
    ours = dpo_loss(policy_c, policy_r, reference_c, reference_r, beta).mean()
    theirs = trl_dpo("sigmoid", beta, *pairs)
    assert abs(float(ours - theirs)) < TOLERANCE and float(ours) > 0


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_ipo_equals_trls_length_averaged_ipo(pairs, beta):
    policy_c, policy_r, reference_c, reference_r, length_c, length_r = pairs
    ours = ipo_loss(policy_c, policy_r, reference_c, reference_r, length_c, length_r, beta).mean()
    assert abs(float(ours - trl_dpo("ipo", beta, *pairs))) < TOLERANCE
    # Averaging per token matters: the summed log-ratios give another loss.
    ones = torch.ones_like(length_c)
    assert abs(float(ipo_loss(policy_c, policy_r, reference_c, reference_r, ones, ones, beta).mean() - ours)) > 1e-3


def test_rdpo_is_dpo_with_the_length_difference_charged_by_hand(pairs):
    policy_c, policy_r, reference_c, reference_r, length_c, length_r = pairs
    beta, alpha = 0.3, 0.05
    expected = [-torch.log(torch.sigmoid(torch.tensor(
        beta * ((pc - rc) - (pr - rr)) - alpha * (lc - lr), dtype=torch.float64)))
        for pc, pr, rc, rr, lc, lr in zip(policy_c.tolist(), policy_r.tolist(), reference_c.tolist(),
                                          reference_r.tolist(), length_c.tolist(), length_r.tolist())]
    ours = dpo_loss(policy_c, policy_r, reference_c, reference_r, beta, alpha, length_c, length_r)
    assert torch.allclose(ours, torch.stack(expected), atol=TOLERANCE)
    assert not torch.allclose(ours, dpo_loss(policy_c, policy_r, reference_c, reference_r, beta))


def cpo_losses(loss_type, beta, chosen, rejected, gamma=0.5):
    state = SimpleNamespace(alpha=0.0, beta=beta, loss_type=loss_type, label_smoothing=0.0, simpo_gamma=gamma,
                            accelerator=ACCELERATOR)
    cpo_loss = trl_reference("trl.experimental.cpo", "CPOTrainer.cpo_loss")
    return run_reference("CPOTrainer.cpo_loss", cpo_loss, state, chosen, rejected)[0]


@pytest.mark.parametrize("beta, gamma", [(2.0, 0.5), (2.5, 1.4), (10.0, 0.3)])
def test_simpo_equals_trls_cpo_simpo_loss(pairs, beta, gamma):
    policy_c, policy_r, _, _, length_c, length_r = pairs
    ours = simpo_loss(policy_c, policy_r, length_c, length_r, beta, gamma)
    theirs = cpo_losses("simpo", beta, policy_c / length_c, policy_r / length_r, gamma)
    assert torch.allclose(ours, theirs, atol=TOLERANCE)


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_slic_hinge_equals_trls_hinge_and_adds_the_fine_tuning_term(pairs, beta):
    policy_c, policy_r, _, _, length_c, _ = pairs
    nll = -policy_c / length_c
    hinge_only = slic_loss(policy_c, policy_r, nll, beta, nll_weight=0.0)
    assert torch.allclose(hinge_only, cpo_losses("hinge", beta, policy_c, policy_r), atol=TOLERANCE)
    with_nll = slic_loss(policy_c, policy_r, nll, beta, nll_weight=0.7)
    assert torch.allclose(with_nll - hinge_only, 0.7 * nll, atol=TOLERANCE)


@pytest.mark.parametrize("weight", [0.1, 0.25])
def test_orpo_odds_ratio_term_equals_trls(pairs, weight):
    policy_c, policy_r, _, _, length_c, length_r = pairs
    nll = torch.zeros_like(policy_c)
    ours = orpo_loss(policy_c, policy_r, length_c, length_r, nll, weight)
    # TRL returns lambda * log sigmoid(log OR) per pair (in float32); ORPO's loss subtracts it from the NLL.
    odds_ratio_loss = trl_reference("trl.experimental.orpo", "ORPOTrainer.odds_ratio_loss")
    theirs = run_reference("ORPOTrainer.odds_ratio_loss", odds_ratio_loss,
                           SimpleNamespace(beta=weight, accelerator=ACCELERATOR), policy_c / length_c,
                           policy_r / length_r)[0]
    assert torch.allclose(ours.float(), -theirs, atol=TOLERANCE)
    assert torch.allclose(orpo_loss(policy_c, policy_r, length_c, length_r, nll + 2.0, weight), ours + 2.0)


def test_log_odds_stay_finite_near_probability_one():
    tiny = torch.tensor([-1e-9, -1e-4], dtype=torch.float64)
    loss = orpo_loss(tiny, torch.tensor([-3.0, -3.0], dtype=torch.float64), torch.ones(2), torch.ones(2),
                     torch.zeros(2, dtype=torch.float64), 1.0)
    assert torch.isfinite(loss).all() and (loss < 1e-3).all()


@pytest.mark.parametrize("beta, undesirable_weight", [(0.1, 1.0), (0.5, 1.33)])
def test_kto_equals_trls_kto_loss(beta, undesirable_weight):
    generator = torch.Generator().manual_seed(1)
    count = 6
    desirable = torch.tensor([True, False, True, True, False, False])
    policy, reference, policy_mismatched, reference_mismatched = (
        -torch.rand(count, generator=generator, dtype=torch.float64) * 5 for _ in range(4))
    # Make the KL estimate positive so the reference point is not clamped to 0.
    policy_mismatched = reference_mismatched + torch.linspace(0.1, 1.5, count, dtype=torch.float64)
    point = kto_reference_point(policy_mismatched, reference_mismatched)
    assert float(point) > 0
    ours = kto_loss(policy, reference, desirable, point, beta, 1.0, undesirable_weight).mean()

    kto_trainer = trl_reference("trl", "KTOTrainer")
    compute_loss = trl_reference("trl", "KTOTrainer._compute_loss")
    model = SummedLogprobModel(torch.cat([policy, policy_mismatched]))
    state = object.__new__(kto_trainer)  # its own _compute_kl_logps must be bound
    state.__dict__.update(trainer_state(model=model, calculate_KL=True, loss_type="kto", beta=beta,
                                        desirable_weight=1.0, undesirable_weight=undesirable_weight,
                                        args=SimpleNamespace(gradient_checkpointing_kwargs=None)))
    matched = rows(torch.arange(count), torch.full((count,), 3))
    mismatched = rows(torch.arange(count, 2 * count), torch.full((count,), 3))
    inputs = {**matched, **{f"KL_{name}": value for name, value in mismatched.items()}, "label": desirable,
              "ref_logps": reference, "ref_KL_logps": reference_mismatched}
    theirs = run_reference("KTOTrainer._compute_loss", compute_loss, state, model, inputs, return_outputs=False)
    assert abs(float(ours - theirs)) < TOLERANCE


def test_kto_reference_point_is_clamped_at_zero_and_carries_no_gradient():
    policy = torch.tensor([-3.0, -2.0], requires_grad=True)
    point = kto_reference_point(policy, torch.tensor([-1.0, -1.0]))
    assert float(point) == 0 and not point.requires_grad
    assert F.relu(torch.tensor(-1.0)) == point


def test_a_reference_trl_no_longer_has_is_a_skip_that_names_it(monkeypatch):
    trl = pytest.importorskip("trl")
    monkeypatch.setitem(__import__("sys").modules, "trl.experimental.cpo", None)  # as if TRL had removed it
    with pytest.raises(pytest.skip.Exception, match=rf"TRL {re.escape(trl.__version__)} has no "
                                                     r"trl.experimental.cpo.CPOTrainer.cpo_loss .*requirements.lock"):
        trl_reference("trl.experimental.cpo", "CPOTrainer.cpo_loss")
    with pytest.raises(pytest.skip.Exception, match="has no trl.DPOTrainer._compute_loss_renamed"):
        trl_reference("trl", "DPOTrainer._compute_loss_renamed")


def test_a_changed_reference_api_is_a_skip_only_off_the_pinned_version(monkeypatch):
    trl = pytest.importorskip("trl")

    def changed(state):
        return state.an_attribute_the_new_version_reads

    monkeypatch.setattr(trl, "__version__", PINNED_TRL)
    with pytest.raises(AttributeError):  # the pinned TRL: a failure is a failure
        run_reference("CPOTrainer.cpo_loss", changed, SimpleNamespace())
    monkeypatch.setattr(trl, "__version__", "99.0.0")
    with pytest.raises(pytest.skip.Exception, match=rf"TRL 99.0.0's CPOTrainer.cpo_loss no longer takes .*"
                                                     rf"written against TRL {re.escape(PINNED_TRL)}"):
        run_reference("CPOTrainer.cpo_loss", changed, SimpleNamespace())
