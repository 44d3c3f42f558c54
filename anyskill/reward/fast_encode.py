"""Faster CLIP image encoding on a CPU: a bfloat16 copy of the vision tower, fed in batches.

ViT-B/32 encoding is ~85 % matrix products (measured with torch's profiler). On CPUs with bfloat16 dot-product
instructions (AVX512-BF16 or AMX-BF16) oneDNN runs them ~2.7x faster in bfloat16 than in float32 (measured on this
repository's 2-core AMD EPYC VM: 5.5 -> 15.1 images/s on one core). ``torch.autocast`` was slower there than
float32 (6.3 images/s: casting every weight at every call), so the tower's weights are converted once instead. The
features agree with float32 to a cosine error of ~1e-4 (:func:`max_cosine_error`; ``bench/bench_reward.py`` records
it).

    enc = BatchedImageEncoder(clip_model)        # precision "auto": bf16 where the CPU supports it, else fp32
    feats = enc.encode(frames)                   # (N, H, W, 3) uint8 -> (N, E) unit float32 features

A model without an open_clip vision tower (``clip_model.model.visual``), or on CUDA (already fp16 there), is encoded
through its own ``encode_images``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

Tensor = torch.Tensor
Precision = Literal["auto", "bf16", "fp32"]


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bfloat16 instruction flags among ``amx_bf16`` and ``avx512_bf16`` (from /proc/cpuinfo; empty when
    unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ()
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return tuple(f for f in ("amx_bf16", "avx512_bf16") if f in flags)


def cpu_supports_bf16() -> bool:
    """True when bfloat16 matrix products are fast here: the CPU has AMX-BF16 or AVX512-BF16 and oneDNN can use it."""
    if not cpu_bf16_flags():
        return False
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: Precision, device: torch.device | str) -> str:
    """"bf16" or "fp32" for ``precision`` on ``device``: "auto" is bf16 on a CPU that supports it; CUDA keeps the
    model's own dtype and reports "native"."""
    if torch.device(device).type != "cpu":
        return "native"
    if precision == "auto":
        return "bf16" if cpu_supports_bf16() else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    return precision


class BatchedImageEncoder:
    """CLIP image features of rendered frames, in batches of ``batch_size``, in ``precision`` (see module doc).

    ``encode(frames (N, H, W, 3) uint8) -> (N, E)`` unit-norm float32 features, like ``ClipModel.encode_images``.
    """

    def __init__(self, clip_model: Any, precision: Precision = "auto", batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.clip_model = clip_model
        self.batch_size = batch_size
        visual = getattr(getattr(clip_model, "model", None), "visual", None)
        device = getattr(clip_model, "device", torch.device("cpu"))
        self.precision = resolve_precision(precision, device) if visual is not None else "native"
        self._visual = None
        if self.precision == "bf16" and visual is not None:
            self._visual = copy.deepcopy(visual).to(torch.bfloat16).eval().requires_grad_(False)

    @torch.inference_mode()
    def encode(self, frames: Tensor) -> Tensor:
        if self._visual is None:
            return self.clip_model.encode_images(frames, batch_size=self.batch_size).float()
        out = [F.normalize(self._visual(self.clip_model.preprocess(chunk).to(torch.bfloat16)).float(), dim=-1)
               for chunk in frames.split(self.batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.clip_model.embed_dim)

    @property
    def description(self) -> str:
        return f"batched ({self.batch_size}) {self.precision}"


def max_cosine_error(a: Tensor, b: Tensor) -> float:
    """max over rows of 1 - cos(a_i, b_i) for (N, E) features."""
    return float((1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)).max())
