"""The first term of Eq. 3: cos(f_I, f_d), a frame's CLIP image feature against the goal's CLIP feature
(:class:`ClipTargetSimilarity`), or against its env's own prompt feature (:class:`ClipTargetBank`, general policy)."""

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



class ClipTargetBank(nn.Module):
    """Cosine similarity of unit CLIP image features (N, E) to one of P targets per frame (the general policy, where
    each env pursues its own prompt): ``forward(features, target_ids (N,)) -> (N,)``. The targets are stored
    unit-normalised, as a (P, E) buffer."""

    targets: Tensor

    def __init__(self, targets: Tensor):
        super().__init__()
        if targets.dim() != 2 or targets.shape[0] < 1:
            raise ValueError(f"targets must be (P, E) with P >= 1, got {tuple(targets.shape)}")
        self.register_buffer("targets", F.normalize(targets.detach().float(), dim=-1))

    def forward(self, image_features: Tensor, target_ids: Tensor) -> Tensor:
        """(N, E) unit image features and (N,) target indices -> (N,) cosine similarities, on the features' device."""
        targets = self.targets.to(image_features.device)[target_ids.to(image_features.device)]
        return (image_features * targets).sum(dim=-1)
