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
    the head is below ``head_height`` m (``head_rule``).

    ``similarity_end`` says what a similarity reset is to PPO: "terminate" (the paper's text: an end without a value
    bootstrap, so with Eq. 3's positive rewards it costs the policy its future reward) or "truncate" (a named
    departure: the env restarts from standing but the value is bootstrapped, as at a time-out, so the rule moves
    experience away from decreasing stretches without making "never decrease 8 times" worth more than the goal;
    rl-games bootstraps a time-out with the value of the HLC step's starting observation, not of the state where the
    rule fired). Falls always terminate."""

    mode: Literal["successive", "cumulative", "off"] = "successive"
    decreases: int = 8
    reset_prob: float = 0.8
    head_height: float = 0.15  # m
    head_rule: bool = True
    similarity_end: Literal["terminate", "truncate"] = "terminate"

    def __post_init__(self) -> None:
        if self.similarity_end not in ("terminate", "truncate"):
            raise ValueError(f"similarity_end must be 'terminate' or 'truncate', got {self.similarity_end!r}")


EARLY_TERMINATIONS: dict[str, EarlyTerminationConfig] = {
    "paper": EarlyTerminationConfig(),
    "truncate": EarlyTerminationConfig(similarity_end="truncate"),
    "falls-only": EarlyTerminationConfig(mode="off"),
}
"""Named early terminations for the command line: "paper" (the paper's text: 8 successive decreases reset with
p 0.8 as a termination, falls terminate), "truncate" (the same resets, bootstrapped), "falls-only" (only the head
rule: what the authors' code does, where the decrease counter only decides whether a fallen env may recover, facts
§3.4)."""
