"""Fine-grained rewards: markers beside segments, each reward on the policy's last token of its segment, the
scaling and KL penalty PPO adds, and the segment reward models' labels and metrics (hand-computed examples)."""

import math

import pytest
import torch
from conftest import save_segment_reward_models

from rrhf.config.blocks import SegmentWeights
from rrhf.data.qa_feedback import SpanError
from rrhf.models.loading import load_tokenizer
from rrhf.scoring.segment_classifier import (
    IGNORE,
    encode_marked,
    marker_token,
    reply_segments,
    segment_labels,
)
from rrhf.scoring.segment_rewards import (
    SegmentRewarder,
    fine_grained_token_rewards,
    segment_end_token,
    token_offsets,
)
from rrhf.studies.fine_grained.reward_models import classification_metrics
from rrhf.training.ppo_parts import RunningMoments, whiten

REPLY = " First, mix the flour. Then bake the bread for an hour, and let it cool down before you cut it."


def test_segments_of_each_kind():
    sentences = [REPLY[s:e] for s, e in reply_segments(REPLY, "factuality")]
    assert sentences == ["First, mix the flour.", "Then bake the bread for an hour, and let it cool down before you "
                                                  "cut it."]
    subsentences = [REPLY[s:e] for s, e in reply_segments(REPLY, "relevance")]
    assert subsentences == ["First, mix the flour.", "Then bake the bread for an hour,",
                            "and let it cool down before you cut it."]


@pytest.mark.parametrize("position", ["after", "before"])
def test_a_marker_goes_beside_each_segment(tokenizer_dir, position):
    tokenizer = load_tokenizer(str(tokenizer_dir), padding_side="right")
    marker = marker_token(tokenizer)
    spans = reply_segments(REPLY, "relevance")
    ids, positions = encode_marked(tokenizer, "\n\nHuman: How do I bake bread?\n\nAssistant:", REPLY, spans,
                                   position, 256)
    assert len(positions) == 3 and all(ids[p] == marker for p in positions)
    prompt_length = len(tokenizer("\n\nHuman: How do I bake bread?\n\nAssistant:", add_special_tokens=False)
                        ["input_ids"])
    # Between the markers lie the segments' own tokens: after -> each segment then its marker, before -> the
    # marker then its segment.
    bounds = [prompt_length - 1, *positions] if position == "after" else [*positions, len(ids)]
    pieces = [tokenizer.decode(ids[start + 1:end]) for start, end in zip(bounds, bounds[1:])]
    assert pieces == [" " + REPLY[s:e] for s, e in spans]


def test_a_long_input_loses_its_prompt_first_then_its_last_segments(tokenizer_dir):
    tokenizer = load_tokenizer(str(tokenizer_dir), padding_side="right")
    spans = reply_segments(REPLY, "relevance")
    full, _ = encode_marked(tokenizer, "\n\nHuman: Hi", REPLY, spans, "after", 256)
    reply_tokens = len(full) - len(tokenizer("\n\nHuman: Hi", add_special_tokens=False)["input_ids"])
    ids, positions = encode_marked(tokenizer, "\n\nHuman: Hi", REPLY, spans, "after", reply_tokens + 2)
    assert len(ids) == reply_tokens + 2 and len(positions) == 3  # two prompt tokens kept, every segment
    first = len(tokenizer(" " + REPLY[spans[0][0]:spans[0][1]], add_special_tokens=False)["input_ids"]) + 1
    ids, positions = encode_marked(tokenizer, "\n\nHuman: Hi", REPLY, spans, "after", first + 3)
    assert len(positions) == 1 and len(ids) == first + 3  # the first segment and its marker, 3 prompt tokens


def test_labels_per_kind_and_factuality_skips_relevance_errors():
    errors = [SpanError("Irrelevant", 1, 22), SpanError("Wrong-Grounding", 23, 96)]
    assert segment_labels(REPLY, errors, "relevance")[1] == [1, 0, 0]
    assert segment_labels(REPLY, errors, "factuality")[1] == [IGNORE, 1]
    assert segment_labels(REPLY, [], "factuality")[1] == [0, 0]


def test_classification_metrics_by_hand():
    metrics = classification_metrics([1, 1, 0, 0, 0, 1], [1, 0, 0, 0, 1, 1])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["error_precision"] == pytest.approx(2 / 3) and metrics["error_recall"] == pytest.approx(2 / 3)
    assert metrics["error_f1"] == pytest.approx(2 / 3)
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / 2) and metrics["error_share"] == 0.5
    assert classification_metrics([0, 0], [0, 0])["error_f1"] is None  # no error to find: F1 undefined


def test_the_token_that_ends_a_segment():
    offsets = [(0, 3), (3, 8), (8, 9), (9, 15), (15, 15)]  # the last: an EOS, which decodes to nothing
    assert [segment_end_token(offsets, end) for end in (3, 8, 9, 10, 15)] == [0, 1, 2, 3, 3]
    assert segment_end_token(offsets, 5) == 1  # a segment ending inside a token: that token


def test_token_offsets_cover_the_decoded_text(tokenizer_dir):
    tokenizer = load_tokenizer(str(tokenizer_dir), padding_side="right")
    ids = tokenizer(REPLY, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    offsets = token_offsets(tokenizer, ids)
    assert offsets[0][0] == 0 and offsets[-1] == (len(REPLY), len(REPLY))  # EOS: empty, at the end
    assert all(a[1] == b[0] for a, b in zip(offsets, offsets[1:]))
    assert "".join(REPLY[s:e] for s, e in offsets) == REPLY


def test_rewards_land_on_the_last_token_of_each_segment():
    rewarder = SegmentRewarder(SegmentWeights(relevance=0.3, factuality=0.5, completeness=0.2), {}, (0.0, 1.0),
                               "after", 256)
    offsets = [(0, 6), (6, 10), (10, 21), (21, 26), (26, 40), (40, 40)]
    judged = {"relevance": [(0, 21, 0.9), (22, 40, 0.2)],  # an error, then a clean sub-sentence
              "factuality": [(0, 40, 0.4)],  # one clean sentence
              "completeness": -1.5}
    rewards = rewarder.rewards(judged, offsets, 6)
    expected = torch.zeros(6)
    expected[2] += -0.3  # characters 0-20 end in token 2
    expected[4] += 0.3 + 0.5  # characters ..39 end in token 4, for both kinds
    expected[5] += 0.2 * -1.5  # completeness on the last action (the EOS)
    assert torch.allclose(rewards, expected)
    removed = SegmentRewarder(SegmentWeights(relevance=0.0, factuality=0.5, completeness=0.0), {}, (0.0, 1.0),
                              "after", 256)
    assert torch.allclose(removed.rewards(judged, offsets, 6), torch.tensor([0, 0, 0, 0, 0.5, 0]))


def test_segment_rewards_are_scaled_then_the_kl_penalty_subtracted():
    raw = torch.tensor([[0.0, 0.3, -0.5, 0.2], [0.3, 0.5, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    logprobs = torch.tensor([[-1.0, -2.0, -1.0, -0.5], [-1.0, -1.0, 0.0, 0.0]])
    reference = torch.tensor([[-1.5, -2.0, -0.5, -0.5], [-2.0, -1.0, 0.0, 0.0]])
    moments = RunningMoments()
    rewards = fine_grained_token_rewards(raw, logprobs, reference, mask, 0.1, "running", moments)
    std = torch.tensor([0.0, 0.8]).std().item()  # the replies' summed rewards, their unbiased std
    assert moments.std == pytest.approx(std)
    expected = (raw / std - 0.1 * (logprobs - reference)) * mask
    assert torch.allclose(rewards, expected)
    whitened = fine_grained_token_rewards(raw, logprobs, reference, mask, 0.0, "whiten", RunningMoments())
    assert torch.allclose(whitened, whiten(raw, mask, shift_mean=False) * mask)
    real = raw[mask]
    assert whitened[mask].std().item() == pytest.approx(1.0, abs=1e-4)  # unit spread over the actions
    assert whitened[mask].mean().item() == pytest.approx(real.mean().item(), abs=1e-5)  # its mean kept
    with pytest.raises(ValueError, match="reward_scaling"):
        fine_grained_token_rewards(raw, logprobs, reference, mask, 0.1, "rank", RunningMoments())
    assert not math.isnan(rewards.sum().item())


def test_fine_grained_rollouts_carry_each_segment_reward_on_its_token(tiny_lm_dir, tiny_reward_dir, tmp_path):
    """PPO's rollouts with a segment rewarder (real tiny reward models, untrained heads): at KL coefficient 0 each
    rollout's rewards are the rewarder's, placed on the sampled tokens that end the segments, over the running
    std of the replies' summed rewards."""
    from rrhf.config.blocks import PPO, Scoring
    from rrhf.models.loading import load_causal_lm, load_reward_model
    from rrhf.models.value_head_policy import CausalLMWithValueHead, FrozenReference
    from rrhf.scoring.segment_rewards import load_segment_rewarder
    from rrhf.training.ppo import RolloutContext, collect_rollouts

    paths = save_segment_reward_models(tmp_path, tiny_lm_dir, mean=0.1, std=2.0)
    weights = {"relevance": 0.3, "factuality": 0.5, "completeness": 0.3}
    rewarder = load_segment_rewarder(paths, weights, "after", 128, "cpu")
    lm, policy_tokenizer = load_causal_lm(str(tiny_lm_dir))
    policy = CausalLMWithValueHead(lm, 1.0).eval()
    reward, reward_tokenizer = load_reward_model(str(tiny_reward_dir))
    ppo = PPO.with_defaults({"chunk_size": 6, "generation": {"max_new_tokens": 16, "temperature": 1.0}})
    context = RolloutContext(policy, policy_tokenizer, FrozenReference(lm), reward, reward_tokenizer,
                             RunningMoments(), ppo, Scoring.with_defaults({"max_length": 128}), 64, None,
                             rewarder, "running")
    prompts = ["\n\nHuman: How do I bake bread? Tell me, please.\n\nAssistant:"] * 6
    rollouts, stats = collect_rollouts(context, prompts, [" Bake it."] * 6, 0.0, seed=3)
    texts = [policy_tokenizer.decode(r.sequence[r.start:], skip_special_tokens=True).rstrip() for r in rollouts]
    raw = [rewarder.rewards(judged, token_offsets(policy_tokenizer, r.sequence[r.start:]), len(r.sequence) - r.start)
           for judged, r in zip(rewarder.judge(prompts, texts), rollouts)]
    sums = torch.stack([row.sum() for row in raw])
    assert stats["score"] == pytest.approx(float(sums.mean()), abs=1e-5)  # the summed segment rewards
    std = context.moments.std
    assert std == pytest.approx(float(sums.std()), rel=1e-4)
    for rollout, expected, text in zip(rollouts, raw, texts):
        assert torch.allclose(rollout.rewards, expected / std, atol=1e-5)
        offsets = token_offsets(policy_tokenizer, rollout.sequence[rollout.start:])
        ends = {segment_end_token(offsets, end) for kind in ("relevance", "factuality")
                for _, end in reply_segments(text, kind)} | {len(offsets) - 1}
        assert set(torch.nonzero(expected).flatten().tolist()) <= ends  # nothing lands between segment ends

