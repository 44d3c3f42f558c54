"""Network pieces the routes share: MLPs and a running observation normaliser."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def mlp(sizes: list[int], out_scale: float | None = None) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), nn.ELU()]
    last = nn.Linear(sizes[-2], sizes[-1])
    if out_scale is not None:
        nn.init.uniform_(last.weight, -out_scale, out_scale)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


class RunningNorm(nn.Module):
    """Running mean / variance of (N, D) inputs; ``forward`` standardises and clips to +-5."""

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("count", torch.tensor(1e-4))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        self.update_moments(x.mean(0), x.var(0, unbiased=False), x.shape[0])

    @torch.no_grad()
    def update_moments(self, m: Tensor, v: Tensor, n: int) -> None:
        """Merge a batch given by its mean (D,), population variance (D,) and size (data-parallel training merges the
        batches of every process: :func:`anyskill.llc.distributed.update_norm`)."""
        total = self.count + n
        delta = m - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + v * n + delta.square() * self.count * n / total) / total
        self.count = total

    def forward(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / (self.var + 1e-5).sqrt()).clamp(-5.0, 5.0)
