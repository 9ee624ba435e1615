"""The typed blocks of the ``fine_grained`` config key (fine-grained RLHF), built like those of
:mod:`rrhf.config.blocks` (which holds ``fine_grained.weights``, :class:`rrhf.config.blocks.SegmentWeights`: the
scoring stage weighs segment rewards with it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rrhf.config.blocks import RolloutSampling, SegmentWeights, Training
from rrhf.config.typed_config import Block


@dataclass(frozen=True)
class FeedbackCollection(Block):
    """``fine_grained.feedback``: which replies are annotated, and how noisily."""

    SCHEMA: ClassVar[str] = "fine_grained.feedback"
    file: str | None
    completeness_file: str | None
    prompts: int
    samples: int
    held_out: float
    label_noise: float
    seed: int
    generation: RolloutSampling


@dataclass(frozen=True)
class SegmentRewardModels(Block):
    """``fine_grained.reward_models``: how the three fine-grained reward models are built."""

    SCHEMA: ClassVar[str] = "fine_grained.reward_models"
    init: str
    marker_position: str
    max_length: int
    training: Training


@dataclass(frozen=True)
class FineGrained(Block):
    """``fine_grained``: fine-grained RLHF of one initial policy (rrhf.training.ppo with a reward per segment)."""

    SCHEMA: ClassVar[str] = "fine_grained"
    policy: str
    feedback: FeedbackCollection
    reward_models: SegmentRewardModels
    weights: SegmentWeights
    variants: dict[str, dict[str, float]]
    kl_coef: float | None
    reward_scaling: str

    def weights_of(self, variant: str | None) -> SegmentWeights:
        """The weights of FG-PPO (``variant`` None) or of FG-PPO-{variant}; KeyError for an unknown variant."""
        if variant is None:
            return self.weights
        return SegmentWeights(**{**self.weights.as_config(), **self.variants[variant]})
