"""State projection (paper §3.3): an MLP from the humanoid's body positions to CLIP image features.

Rendering and encoding every frame is the bottleneck of high-level training; the paper replaces it by an MLP
trained with an MSE loss on (state, CLIP image feature) pairs collected during rendered training, and reports a
10.4x speed-up. Input: the 15 body positions (45 values, m, env frame, as the authors' code); output: a 512-D
feature used in place of the CLIP image embedding (normalised before the cosine). Default 45 -> 512 -> ReLU -> 512.

**Object-aware** (interaction scenes, this project's extension): with an ``object_layout`` the input also holds each
object's state read from the objects' part of ``qpos`` (the coordinates after the humanoid's): a free joint (the
ball) contributes its position (3 values, m), a hinge (the door leaf) the cosine and sine of its angle (2 values), so
the predicted feature can show a kicked ball or an opened door. :meth:`StateProjection.predict` takes
``(body_pos, qpos)`` as the goals see them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor


OBJECT_FEATURES = {"free": 3, "hinge": 2}
"""Input values per object joint kind: a free joint's position (m); a hinge's (cos, sin) of its angle."""


def object_features(object_qpos: Tensor, layout: tuple[tuple[str, int], ...]) -> Tensor:
    """(N, K) objects' coordinates (after the humanoid's) -> (N, F) projection inputs for ``layout``, a tuple of
    (joint kind "free" | "hinge", offset in the K coordinates) per object."""
    parts = []
    for kind, offset in layout:
        if kind == "free":
            parts.append(object_qpos[:, offset:offset + 3])
        elif kind == "hinge":
            angle = object_qpos[:, offset]
            parts.append(torch.stack([torch.cos(angle), torch.sin(angle)], -1))
        else:
            raise ValueError(f"unknown object joint kind {kind!r}; expected one of {sorted(OBJECT_FEATURES)}")
    return torch.cat(parts, -1) if parts else object_qpos.new_zeros(object_qpos.shape[0], 0)


class StateProjection(nn.Module):
    """(N, B, 3) body positions, m [+ (N, F) object features] -> (N, E) predicted CLIP image features (not
    normalised). ``object_layout``: see :func:`object_features`; ``humanoid_nq``: the humanoid's coordinates in a
    ``qpos`` row (7 + 28), after which the objects' follow."""

    def __init__(self, num_bodies: int = 15, embed_dim: int = 512, hidden: tuple[int, ...] = (512,),
                 object_layout: tuple[tuple[str, int], ...] = (), humanoid_nq: int = 35):
        super().__init__()
        self.num_bodies, self.embed_dim, self.hidden = num_bodies, embed_dim, tuple(hidden)
        self.object_layout = tuple((str(k), int(o)) for k, o in object_layout)
        self.humanoid_nq = int(humanoid_nq)
        self.object_dim = sum(OBJECT_FEATURES.get(k, 0) for k, _ in self.object_layout)
        layers: list[nn.Module] = []
        width = 3 * num_bodies + self.object_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, embed_dim))
        self.net = nn.Sequential(*layers)
        for m in self.net:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, body_pos: Tensor, objects: Tensor | None = None) -> Tensor:
        """body_pos (N, B, 3) m; objects (N, F) from :func:`object_features` (required iff the layout is not
        empty) -> (N, E)."""
        x = body_pos.reshape(body_pos.shape[0], -1)
        if self.object_dim:
            if objects is None or objects.shape[-1] != self.object_dim:
                raise ValueError(f"this projection is object-aware ({self.object_layout}) and needs (N, "
                                 f"{self.object_dim}) object features, got "
                                 f"{None if objects is None else tuple(objects.shape)}")
            x = torch.cat([x, objects.to(x.dtype)], -1)
        return self.net(x)

    def predict(self, body_pos: Tensor, qpos: Tensor | None = None) -> Tensor:
        """(N, E) features from the states as the goals see them: body_pos (N, B, 3) m and qpos (N, nq) whose
        columns after ``humanoid_nq`` are the objects' (needed only by an object-aware projection)."""
        dev = next(self.parameters()).device
        objects = None
        if self.object_dim:
            if qpos is None or qpos.shape[-1] <= self.humanoid_nq:
                raise ValueError("an object-aware projection needs the scene's qpos (humanoid and object "
                                 f"coordinates), got {None if qpos is None else tuple(qpos.shape)}")
            objects = object_features(qpos[:, self.humanoid_nq:].to(dev).float(), self.object_layout)
        return self(body_pos.to(dev).float(), objects)

    def config(self) -> dict:
        """What rebuilds the architecture (:meth:`from_config`)."""
        return {"num_bodies": self.num_bodies, "embed_dim": self.embed_dim, "hidden": list(self.hidden),
                "object_layout": [list(e) for e in self.object_layout], "humanoid_nq": self.humanoid_nq}

    @classmethod
    def from_config(cls, cfg: dict) -> StateProjection:
        return cls(int(cfg["num_bodies"]), int(cfg["embed_dim"]), tuple(int(h) for h in cfg["hidden"]),
                   tuple((str(k), int(o)) for k, o in cfg.get("object_layout", ())), int(cfg.get("humanoid_nq", 35)))

    def save(self, path: str | Path, **extra) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": self.state_dict(), **self.config(), **extra}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> StateProjection:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        net = cls.from_config(ckpt)
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
                   lr: float = 1e-3, val_fraction: float = 0.2, seed: int = 0, progress: bool = False,
                   objects: Tensor | None = None, val_mask: Tensor | None = None) -> ProjectionFit:
    """Train ``net`` with MSE on (body_pos (N, B, 3) [, objects (N, F)], features (N, E)) pairs; a random
    ``val_fraction`` is held out, or the frames where ``val_mask`` (N,) bool is true (e.g. whole trajectories).

    Targets are the CLIP features as collected (the reward normalises both sides before the cosine, so scale matters
    only through the MSE).
    """
    g = torch.Generator().manual_seed(seed)
    n = body_pos.shape[0]
    if val_mask is not None:
        val, train = torch.nonzero(val_mask).flatten(), torch.nonzero(~val_mask).flatten()
        if not len(val) or not len(train):
            raise ValueError(f"val_mask must hold out some but not all of the {n} frames, got {len(val)} held out")
    else:
        perm = torch.randperm(n, generator=g)
        n_val = max(1, int(n * val_fraction))
        val, train = perm[:n_val], perm[n_val:]

    def run(idx: Tensor) -> Tensor:
        return net(body_pos[idx], objects[idx] if objects is not None else None)
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
            loss = F.mse_loss(run(chunk), features[chunk])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(chunk)
        fit.train_loss.append(total / max(1, len(train)))
        net.eval()
        with torch.no_grad():
            pred = run(val)
            fit.val_loss.append(float(F.mse_loss(pred, features[val])))
            fit.val_cosine.append(float(F.cosine_similarity(pred, features[val], dim=-1).mean()))
    return fit
