"""The reward designs the paper compares with its own in §4.5 (Table 3), and the mean-pooled features of Table 1's
"w/ VideoCLIP" row, written from their published definitions (not from the authors' code, which has none of them).

With x the unit CLIP image feature of a frame, g the unit feature of the goal text and cos = x·g (ours, Eq. 3):

* **VLM-RMs** (Rocamonde et al. 2024) — *goal–baseline projection*. A baseline prompt b describes the scene
  without the task ("a humanoid robot"); d = (g - b) / ||g - b|| is the direction from baseline to goal. The frame is
  compared with the goal only along that direction, to a degree α ∈ [0, 1]:

      P = α d dᵀ + (1 - α) I,        r = 1 - ½ ||(x - g) P||²

  α = 0 gives 1 - ½||x - g||² = cos (our reward); α = 1 keeps only the component along d:
  r = 1 - ½ ((x - g)·d)².
* **CLIP-S** (CLIPScore, Hessel et al. 2021): r = 2.5 · max(cos, 0).
* **AvgPool** (score pooling, VideoCLIP-style temporal averaging): r_t = mean of cos over the last W frames.
* **Mean-pooled features** (Table 1's "w/ VideoCLIP"): the frame features of the last W frames are averaged
  and *then* compared, r_t = cos(mean_k x_{t-k}, g) — one feature for a short clip, as a video-text model scores it.
* **ASE-style velocity reward** (Peng et al. 2022, heading task): r_v = exp(-0.25 (v* - v·h)²), v the root's
  horizontal velocity (m/s), h a unit heading, v* a target speed. The authors' environment computes exactly this
  term (weight 0.1, v* = 0.2 m/s, h = +x; facts §3.2) but leaves it out of the reward; "+ vel. rew." adds it.

:class:`TemporalWindow` holds the last W values per environment, cleared when an environment resets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

CLIP_S_WEIGHT = 2.5
"""The w of CLIPScore, w · max(cos, 0) (Hessel et al. 2021)."""


def vlm_rm_reward(image_features: Tensor, goal: Tensor, baseline: Tensor, alpha: float) -> Tensor:
    """(N,) VLM-RMs reward 1 - ½||(x - g)P||² of unit image features x (N, E) for goal g (E,) and baseline b (E,)
    features (normalised here), P = α d dᵀ + (1 - α) I with d the unit direction from b to g; α in [0, 1]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    g = F.normalize(goal.flatten().float(), dim=0).to(image_features.device)
    direction = g - F.normalize(baseline.flatten().float(), dim=0).to(image_features.device)
    if float(direction.norm()) < 1e-8:
        raise ValueError("the goal and baseline features are identical: VLM-RMs needs a direction between them")
    d = direction / direction.norm()
    diff = image_features - g
    along = (diff @ d)[:, None] * d
    projected = alpha * along + (1.0 - alpha) * diff
    return 1.0 - 0.5 * projected.pow(2).sum(dim=-1)


def clip_s_reward(similarity: Tensor, weight: float = CLIP_S_WEIGHT) -> Tensor:
    """CLIPScore of cosine similarities (any shape): ``weight`` · max(cos, 0)."""
    return weight * similarity.clamp_min(0.0)


def velocity_reward(root_velocity: Tensor, target_speed: float = 0.2,
                    heading: tuple[float, float] = (1.0, 0.0)) -> Tensor:
    """(N,) exp(-0.25 (v* - v·h)²) of root velocities (N, 2 or 3) m/s (only x, y are used), target speed v* m/s
    and a horizontal heading h (normalised here)."""
    h = F.normalize(torch.as_tensor(heading, dtype=root_velocity.dtype, device=root_velocity.device), dim=0)
    speed = root_velocity[:, :2] @ h
    return torch.exp(-0.25 * (target_speed - speed) ** 2)


class TemporalWindow:
    """The last ``size`` values (N, *shape) of N environments; :meth:`mean` averages those recorded since each
    environment's last :meth:`reset` (fewer than ``size`` right after a reset)."""

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self.size = size
        self._values: Tensor | None = None  # (N, size, *shape)
        self._count: Tensor | None = None  # (N,) values held, <= size
        self._next = 0

    def push(self, values: Tensor) -> None:
        """Append one value per environment, values (N, *shape)."""
        if self._values is None or self._values.shape[0] != values.shape[0] or \
                self._values.shape[2:] != values.shape[1:]:
            self._values = values.new_zeros((values.shape[0], self.size, *values.shape[1:]))
            self._count = torch.zeros(values.shape[0], dtype=torch.long, device=values.device)
            self._next = 0
        assert self._count is not None
        self._values[:, self._next] = values
        self._next = (self._next + 1) % self.size
        self._count = (self._count + 1).clamp_max(self.size)

    def mean(self) -> Tensor:
        """(N, *shape) the mean of each environment's held values (NaN for one that holds none)."""
        if self._values is None or self._count is None:
            raise RuntimeError("the window is empty: push values first")
        # the held values are the last `count` slots written, counting back from the slot before `_next`
        age = (self._next - 1 - torch.arange(self.size, device=self._values.device)) % self.size  # slot -> age
        held = (age[None, :] < self._count[:, None]).to(self._values.dtype)  # (N, size)
        weights = held.view(*held.shape, *([1] * (self._values.dim() - 2)))
        return (self._values * weights).sum(1) / held.sum(1).view(-1, *([1] * (self._values.dim() - 2)))

    def reset(self, env_ids: Tensor) -> None:
        """Forget the values of environments ``env_ids`` (their episodes restart)."""
        if self._count is not None:
            self._count[env_ids.to(self._count.device)] = 0
