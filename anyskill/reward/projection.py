"""State projection (paper §3.3): an MLP from the humanoid's body positions to CLIP image features.

Rendering and encoding every frame is the bottleneck of high-level training; the paper replaces it by an MLP
trained with an MSE loss on (state, CLIP image feature) pairs collected during rendered training, and reports a
10.4x speed-up. Input: the 15 body positions (45 values, m, env frame, as the authors' code); output: a 512-D
feature used in place of the CLIP image embedding (normalised before the cosine). Default 45 -> 512 -> ReLU -> 512.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


class StateProjection(nn.Module):
    """(N, B, 3) body positions, m -> (N, E) predicted CLIP image features (not normalised)."""

    def __init__(self, num_bodies: int = 15, embed_dim: int = 512, hidden: tuple[int, ...] = (512,)):
        super().__init__()
        self.num_bodies, self.embed_dim, self.hidden = num_bodies, embed_dim, tuple(hidden)
        layers: list[nn.Module] = []
        width = 3 * num_bodies
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, embed_dim))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, body_pos: Tensor) -> Tensor:
        return self.net(body_pos.reshape(body_pos.shape[0], -1))

    def save(self, path: str | Path, **extra) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": self.state_dict(), "num_bodies": self.num_bodies, "embed_dim": self.embed_dim,
                    "hidden": self.hidden, **extra}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> StateProjection:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        net = cls(ckpt["num_bodies"], ckpt["embed_dim"], tuple(ckpt["hidden"]))
        net.load_state_dict(ckpt["state_dict"])
        return net


@dataclass
class ProjectionFit:
    """Result of :func:`fit_projection`: loss curves and held-out cosine similarity to the true features."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_cosine: list[float] = field(default_factory=list)

    @property
    def final_val_cosine(self) -> float:
        return self.val_cosine[-1] if self.val_cosine else float("nan")


def fit_projection(net: StateProjection, body_pos: Tensor, features: Tensor, epochs: int = 50, batch_size: int = 256,
                   lr: float = 1e-3, val_fraction: float = 0.2, seed: int = 0, progress: bool = False) -> ProjectionFit:
    """Train ``net`` with MSE on (body_pos (N, B, 3), features (N, E)) pairs; a random ``val_fraction`` is held out.

    Targets are the CLIP features as collected (the reward normalises both sides before the cosine, so scale matters
    only through the MSE).
    """
    g = torch.Generator().manual_seed(seed)
    n = body_pos.shape[0]
    perm = torch.randperm(n, generator=g)
    n_val = max(1, int(n * val_fraction))
    val, train = perm[:n_val], perm[n_val:]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    fit = ProjectionFit()
    it = range(epochs)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="state projection")
    for _ in it:
        net.train()
        order = train[torch.randperm(len(train), generator=g)]
        total = 0.0
        for chunk in order.split(batch_size):
            loss = F.mse_loss(net(body_pos[chunk]), features[chunk])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(chunk)
        fit.train_loss.append(total / max(1, len(train)))
        net.eval()
        with torch.no_grad():
            pred = net(body_pos[val])
            fit.val_loss.append(float(F.mse_loss(pred, features[val])))
            fit.val_cosine.append(float(F.cosine_similarity(pred, features[val], dim=-1).mean()))
    return fit
