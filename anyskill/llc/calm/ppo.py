"""PPO pieces of the CALM agent that need none of its state: the update's autocast dtype, the replay buffer, the
epsilon-greedy exploration schedule and GAE (:mod:`anyskill.llc.calm.agent`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def update_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The autocast dtype of the update for a ``precision`` setting on ``device`` (see :class:`CALMSettings`)."""
    if precision == "auto":
        fast_bf16 = torch.device(device).type == "cuda" or torch.cpu._is_amx_tile_supported()
        return torch.bfloat16 if fast_bf16 else torch.float32
    return getattr(torch, precision)


class SampleBuffer:
    """Fixed-capacity ring buffer of named row tensors on one device (the replay buffer)."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[int, ...]], device: str | torch.device,
                 dtypes: dict[str, torch.dtype] | None = None):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        dtypes = dtypes or {}
        self.data = {k: torch.zeros((capacity, *s), dtype=dtypes.get(k, torch.float32), device=self.device)
                     for k, s in shapes.items()}
        self._head = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def store(self, **rows: Tensor) -> None:
        """Append rows (n, ...) for every field (same n); the oldest rows are overwritten when full."""
        if set(rows) != set(self.data):
            raise KeyError(f"store() needs exactly the fields {sorted(self.data)}, got {sorted(rows)}")
        n = next(iter(rows.values())).shape[0]
        if n == 0:
            return
        if n > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
            n = self.capacity
        idx = (self._head + torch.arange(n, device=self.device)) % self.capacity
        for k, v in rows.items():
            self.data[k][idx] = v.reshape(n, *self.data[k].shape[1:]).to(self.data[k])
        self._head = (self._head + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(self, n: int) -> dict[str, Tensor]:
        """n rows drawn uniformly with replacement."""
        if self._size == 0:
            raise RuntimeError("cannot sample from an empty buffer; store() rows first")
        idx = torch.randint(0, self._size, (n,), device=self.device)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"data": {k: v[: self._size].clone() for k, v in self.data.items()}, "head": self._head,
                "size": self._size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"saved buffer holds {size} rows, more than this buffer's capacity {self.capacity}")
        for k, v in self.data.items():
            v[:size] = state["data"][k].to(v)
        self._head, self._size = int(state["head"]), size


def exploration_probabilities(num_envs: int, device: str | torch.device = "cpu") -> Tensor:
    """(N,) probability that env i samples a stochastic action: 1 - exp(10 (i / (N - 1) - 1))."""
    if num_envs == 1:
        return torch.ones(1, device=device)
    frac = torch.arange(num_envs, dtype=torch.float32, device=device) / (num_envs - 1)
    return 1.0 - torch.exp(10.0 * (frac - 1.0))


def gae_advantages(rewards: Tensor, values: Tensor, next_values: Tensor, step_dones: Tensor, gamma: float,
                   tau: float) -> Tensor:
    """Generalised advantage estimates (H, N, 1) over a rollout of H steps.

    rewards, values (H, N, 1); next_values (H, N, 1) the bootstrap value after step t, already zero where
    step t terminated; step_dones (H, N) 1 where the episode ended at step t (termination or time-out),
    which cuts the recursion: A_t = δ_t + γ τ (1 - done_t) A_{t+1}, δ_t = r_t + γ V'_t - V_t.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        not_done = (1.0 - step_dones[t]).unsqueeze(1)
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * tau * not_done * running
        advantages[t] = running
    return advantages
