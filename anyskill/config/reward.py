"""Settings of the high-level policy's reward (:mod:`anyskill.reward`): the weights and form of Eq. 3
(:class:`RewardConfig`, :func:`anyskill.reward.similarity.hlc_reward`) and the early termination on similarity
decreases and falls (:class:`EarlyTerminationConfig`, :class:`anyskill.reward.early_termination.EarlyTermination`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class RewardConfig:
    """Weights and form of the high-level reward, Eq. 3 (``variant="official"``: the authors' code's form)."""

    w_clip: float = 0.4  # w_c
    w_style: float = 0.4  # w_s
    variant: Literal["paper", "official"] = "paper"
    style_sharpness: float = 4.0  # the 4 in exp(-4 ||z - z_hat||)
    w_velocity: float = 0.0  # w_v of the ASE-style velocity term; 0: off (the paper's reward)
    target_speed: float = 0.2  # v*, m/s (the authors' unused velocity term, facts §3.2)
    heading: tuple[float, float] = (1.0, 0.0)  # h, horizontal unit direction (+x: the spawn facing)


@dataclass(frozen=True)
class EarlyTerminationConfig:
    """Reset after ``decreases`` similarity decreases (``mode``: successive or cumulative) with ``reset_prob``, or when
    the head is below ``head_height`` m (``head_rule``)."""

    mode: Literal["successive", "cumulative", "off"] = "successive"
    decreases: int = 8
    reset_prob: float = 0.8
    head_height: float = 0.15  # m
    head_rule: bool = True
