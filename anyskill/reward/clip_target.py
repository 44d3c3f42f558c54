"""The first term of Eq. 3: cos(f_I, f_d), a frame's CLIP image feature against the goal's CLIP feature."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ClipTargetSimilarity(nn.Module):
    """Cosine similarity of unit CLIP image features (N, E) to one target feature (E,): a text prompt's (Eq. 3) or a
    goal image's. The target is stored unit-normalised, as a buffer (it moves with ``.to`` and is saved)."""

    target: Tensor

    def __init__(self, target: Tensor):
        super().__init__()
        self.register_buffer("target", F.normalize(target.detach().float().flatten(), dim=0))

    def forward(self, image_features: Tensor) -> Tensor:
        """(N, E) unit image features -> (N,) cosine similarities, on the features' device."""
        return image_features @ self.target.to(image_features.device)

