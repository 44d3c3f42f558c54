"""What text enhancement does to the high-level policy (paper §4.3, Fig. 6): for each prompt, one policy trained on
the original text and one on its enhanced text; each is rolled out, rendered, and every frame is scored by CLIP
against both texts.

    comparisons = compare_enhancement(enhancements, "llc.pth", clip_model, renderer, projection=projection,
                                      scale="smoke", out_dir="runs/text_enhancement")
    enhancement_table(comparisons)  # one row per prompt and policy: mean similarity to each text

Training uses ``reward_source`` ("projection": the state projection, fast; "render": rendered frames); the
rollouts are always rendered and encoded by CLIP, so their similarities are the real reward's. A prompt the enhancer
left unchanged gets one policy, shown on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from anyskill.hlc.clip_goals import RewardSource, TextGoal
from anyskill.hlc.rollout import RolloutResult, rollout
from anyskill.hlc.train import train_hlc
from anyskill.llc.controller import load_llc
from anyskill.rl.runner import TrainResult
from anyskill.text.enhancer import Enhancement

if TYPE_CHECKING:
    from anyskill.reward.clip_model import ClipModel
    from anyskill.reward.projection import StateProjection
    from anyskill.sim.render import StateRenderer

Tensor = torch.Tensor


@dataclass
class PromptPolicy:
    """A policy trained on ``text``: its training run, a rendered rollout (T frames) and the frames' unit CLIP image
    features ``image_features`` (T, E)."""

    text: str
    run: TrainResult
    rollout: RolloutResult
    image_features: Tensor

    def similarity(self, text_feature: Tensor) -> np.ndarray:
        """(T,) cosine of each rollout frame to a unit text feature (E,)."""
        return (self.image_features @ text_feature.to(self.image_features.device)).cpu().numpy()


@dataclass
class EnhancementComparison:
    """One prompt: its enhancement, the policies trained on the original and on the enhanced text, and the unit CLIP
    features (E,) of both texts."""

    enhancement: Enhancement
    original: PromptPolicy
    enhanced: PromptPolicy
    original_feature: Tensor
    enhanced_feature: Tensor

    def curves(self) -> dict[tuple[str, str], np.ndarray]:
        """(T,) per-frame similarity for each (policy, scored text): policy and text in {"original", "enhanced"}."""
        return {(p, t): getattr(self, p).similarity(getattr(self, f"{t}_feature"))
                for p in ("original", "enhanced") for t in ("original", "enhanced")}


def compare_enhancement(enhancements: Sequence[Enhancement], llc_checkpoint: str | Path, clip_model: ClipModel,
                        renderer: StateRenderer, reward_source: RewardSource = "projection",
                        projection: StateProjection | None = None, scale: str = "smoke", seed: int = 0,
                        out_dir: str | Path = "runs/text_enhancement", seconds: float = 2.0, device: str | None = None,
                        motion_lib=None) -> list[EnhancementComparison]:
    """Train and roll out a policy on each original and each enhanced text (module docstring); runs go to
    ``out_dir/policy_NN``. ``seconds``: rollout length; ``seed``: training and rollouts."""
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    llc = load_llc(llc_checkpoint)
    out = Path(out_dir)
    policies: dict[str, PromptPolicy] = {}

    def policy_for(prompt: str | Enhancement) -> PromptPolicy:
        text = prompt.text if isinstance(prompt, Enhancement) else prompt
        if text not in policies:
            goal = TextGoal(clip_model, renderer, prompt, reward_source, projection)
            run = train_hlc(goal, llc_checkpoint, scale, out / f"policy_{len(policies):02d}", seed=seed,
                            device=device, motion_lib=motion_lib, progress=False)
            ro = rollout(run.checkpoint, llc, goal, seconds=seconds, seed=seed, renderer=renderer,
                         motion_lib=motion_lib)
            assert ro.frames is not None  # rendered
            features = clip_model.encode_images(torch.from_numpy(ro.frames))
            policies[text] = PromptPolicy(text, run, ro, features)
        return policies[text]

    comparisons = []
    for e in enhancements:
        features = clip_model.encode_text([e.original, e.text])
        comparisons.append(EnhancementComparison(e, policy_for(e.original), policy_for(e), features[0], features[1]))
    return comparisons


def enhancement_table(comparisons: Sequence[EnhancementComparison]) -> pd.DataFrame:
    """One row per prompt and policy ("original" or "enhanced" text): the text it was trained on, the mean rollout
    similarity to the original and to the enhanced text, and its last training epoch's mean similarity."""
    rows = []
    for c in comparisons:
        curves = c.curves()
        for policy in ("original", "enhanced"):
            trained = getattr(c, policy)
            rows.append({
                "prompt": c.enhancement.original,
                "enhanced_text": c.enhancement.text,
                "enhancer": c.enhancement.enhancer,
                "policy": policy,
                "trained_on": trained.text,
                "similarity_to_original": float(curves[(policy, "original")].mean()),
                "similarity_to_enhanced": float(curves[(policy, "enhanced")].mean()),
                "final_training_similarity": float(trained.run.epoch_stats[-1]["similarity"]),
            })
    return pd.DataFrame(rows)
