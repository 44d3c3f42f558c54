"""CLIP_S, the objective column of the paper's Tables 1–3 (§4.2: "the CLIP similarity score between the rendered
images and the text descriptions").

    CLIP_S = 100 · (1/T) Σ_t cos(f_I(x_t), f_T(d))

over the T rendered frames x_t of a rollout, with f_I and f_T CLIP's image and text encoders and d the instruction.
The features are unit-norm, so the cosine is their dot product; the factor 100 gives the paper's scale (its full
model: 24.18). Score every method against the same, original instruction: a method that trained on an enhanced
rewrite of it is still judged on what the user asked for. With random CLIP weights (``ClipSpec(weights="random")``)
the number is computed the same way and means nothing.
"""

from __future__ import annotations

import numpy as np
import torch

from anyskill.reward.clip_model import ClipModel


def clip_similarities(frames: np.ndarray | torch.Tensor, prompt: str, clip: ClipModel) -> np.ndarray:
    """(T,) cos(f_I(x_t), f_T(prompt)) of frames (T, H, W, 3) uint8 RGB."""
    frames = torch.as_tensor(frames)
    if len(frames) == 0:
        raise ValueError("CLIP_S needs at least one rendered frame")
    return clip.similarity(frames, prompt).cpu().numpy()


def clip_score(frames: np.ndarray | torch.Tensor, prompt: str, clip: ClipModel) -> float:
    """CLIP_S of frames (T, H, W, 3) uint8 RGB against ``prompt``: 100 × the mean cosine over frames."""
    return 100.0 * float(clip_similarities(frames, prompt, clip).mean())
