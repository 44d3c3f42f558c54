"""Text goals scored with the reward designs the paper compares in Table 3 and with Table 1's mean-pooled features
(the formulas: :mod:`anyskill.reward.variants`). Each wraps a :class:`~anyskill.hlc.clip_goals.TextGoal`, whose
image features (rendered or projected) it reuses, and answers the per-frame score that Eq. 3's first term, the
early-termination counter and the training curves then use in place of cos(f_I, f_d):

    goal = VariantGoal(TextGoal(clip, renderer, "kick"), "clip_s")          # 2.5 · max(cos, 0)
    goal = VariantGoal(text_goal, "vlm_rm", baseline="a humanoid robot", alpha=0.5)
    goal = VariantGoal(text_goal, "avgpool", window=15)                     # mean cos of the last 15 frames
    goal = VariantGoal(text_goal, "mean_pooled", window=15)                 # cos(mean feature of 15 frames, f_d)

The windows span LLC frames (30 Hz) across HLC steps and restart with an environment's episode
(:meth:`HighLevelEnv` calls :meth:`VariantGoal.reset_envs`).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from anyskill.hlc.clip_goals import TextGoal
from anyskill.hlc.goal import HumanoidStates
from anyskill.reward.variants import TemporalWindow, clip_s_reward, vlm_rm_reward

Tensor = torch.Tensor
FrameScore = Literal["clip_s", "vlm_rm", "avgpool", "mean_pooled"]
FRAME_SCORES: tuple[FrameScore, ...] = ("clip_s", "vlm_rm", "avgpool", "mean_pooled")
DEFAULT_BASELINE = "a humanoid robot"
"""VLM-RMs' baseline prompt: the agent and scene without the task (their CartPole/humanoid prompts are of this
kind)."""


class VariantGoal:
    """A :class:`TextGoal` scored by one of :data:`FRAME_SCORES` (module docstring). ``window``: frames pooled by
    ``avgpool``/``mean_pooled`` (30 Hz; 15 = 0.5 s); ``baseline``/``alpha``: VLM-RMs' baseline prompt and partial
    projection α ∈ [0, 1]."""

    def __init__(self, base: TextGoal, score: FrameScore, window: int = 15, baseline: str = DEFAULT_BASELINE,
                 alpha: float = 0.5):
        if score not in FRAME_SCORES:
            raise ValueError(f"score must be one of {FRAME_SCORES}, got {score!r}")
        self.base = base
        self.score = score
        self.window = TemporalWindow(window)
        self.baseline_feature: Tensor | None = None
        self.alpha = alpha
        extra: dict[str, Any] = {}
        if score in ("avgpool", "mean_pooled"):
            extra = {"window": window}
        elif score == "vlm_rm":
            if not 0.0 <= alpha <= 1.0:
                raise ValueError(f"alpha must be in [0, 1], got {alpha}")
            self.baseline_feature = base.clip_model.encode_text(baseline)[0]
            extra = {"baseline": baseline, "alpha": alpha}
        self.renderer = base.renderer
        self.clip_weights = base.clip_weights
        details = ", ".join(f"{k} {v!r}" for k, v in extra.items())
        self.description = f"{base.description} | frame score {score}" + (f" ({details})" if details else "")
        self.spec = {**base.spec, "frame_score": score, **extra}

    def similarity(self, states: HumanoidStates) -> Tensor:
        """(N,) the variant's score of each env's current frame (pushing it into the window when pooling)."""
        if self.score == "clip_s":
            return clip_s_reward(self.base.similarity(states))
        if self.score == "avgpool":
            self.window.push(self.base.similarity(states))
            return self.window.mean()
        features = self.base.image_features(states)
        target = self.base.text_feature.to(features.device)
        if self.score == "vlm_rm":
            assert self.baseline_feature is not None
            return vlm_rm_reward(features, target, self.baseline_feature, self.alpha).to(states.body_pos.device)
        self.window.push(features)
        return (F.normalize(self.window.mean(), dim=-1) @ target).to(states.body_pos.device)

    def reset_envs(self, env_ids: Tensor) -> None:
        """Empty the windows of environments whose episodes restarted."""
        self.window.reset(env_ids)
