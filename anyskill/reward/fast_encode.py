"""Faster CLIP image encoding on a CPU: a bfloat16 or int8 copy of the vision tower, fed in batches.

ViT-B/32 encoding is ~85 % matrix products (measured with torch's profiler). On CPUs with bfloat16 dot-product
instructions (AVX512-BF16 or AMX-BF16) oneDNN runs them ~2.7x faster in bfloat16 than in float32 (measured on this
repository's 2-core AMD EPYC VM: 5.5 -> 15.1 images/s on one core). ``torch.autocast`` was slower there than
float32 (6.3 images/s: casting every weight at every call), so the tower's weights are converted once instead. The
features agree with float32 to a cosine error of ~1e-4 (:func:`max_cosine_error`; ``bench/bench_reward.py`` records
it).

On CPUs without those instructions (AVX2 only, e.g. this repository's later 2-core AMD EPYC VM), precision "int8"
quantizes every matrix product of the tower to int8 weights with per-batch int8 activations (PyTorch's dynamic
quantization; attention's packed input projection is first rewritten as an exact ``nn.Linear`` so that it is
quantized too). Measured there with ``bench/bench_reward.py`` (``results/bench_reward.json``): 18.9 -> 30.5
images/s on 2 cores, max cosine error 4.5e-4 on random weights. Quantization error depends on the weights (trained
CLIP towers have outlier activations), so ``int8`` is opt-in, and the encoder measures its own error against float32
on the first frames it encodes and refuses to go on above :data:`INT8_MAX_COSINE_ERROR` (:class:`QuantizationError`).

    enc = BatchedImageEncoder(clip_model)        # precision "auto": bf16 where the CPU supports it, else fp32
    feats = enc.encode(frames)                   # (N, H, W, 3) uint8 -> (N, E) unit float32 features

A model without an open_clip vision tower (``clip_model.model.visual``), or on CUDA (already fp16 there), is encoded
through its own ``encode_images``.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import torch.nn as nn
import torch.nn.functional as F

Tensor = torch.Tensor
Precision = Literal["auto", "bf16", "fp32", "int8"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
INT8_CHECK_FRAMES = 4
"""How many of the first frames an int8 encoder also encodes in float32 to measure its own error (~0.3 s)."""
INT8_MAX_COSINE_ERROR = 2e-3
"""The largest 1 - cos between int8 and float32 features of the same frame accepted by precision "int8": an error of
2e-3 turns the feature by at most 0.063 rad, which moves a text similarity by at most ~0.06 and typically (a random
direction in 512-D) by ~0.003."""


class QuantizationError(RuntimeError):
    """int8 features differ from float32 ones by more than :data:`INT8_MAX_COSINE_ERROR` on these weights."""


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
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


class LinearAttention(nn.Module):
    """``nn.MultiheadAttention`` (self-attention, no mask) with its packed input projection as an ``nn.Linear``: the
    same function (float32 error ~1e-7), but every matrix product is a ``Linear`` that dynamic quantization reaches.
    Called as open_clip's residual blocks call attention: ``attn(x, x, x, need_weights=False, attn_mask=None)``."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not mha._qkv_same_embed_dim or mha.in_proj_bias is None or mha.bias_k is not None:
            raise ValueError("only packed self-attention with biases is supported")
        e = mha.embed_dim
        self.heads, self.batch_first = mha.num_heads, mha.batch_first
        self.qkv = nn.Linear(e, 3 * e)
        self.out = nn.Linear(e, e)
        with torch.no_grad():
            self.qkv.weight.copy_(mha.in_proj_weight)
            self.qkv.bias.copy_(mha.in_proj_bias)
            self.out.weight.copy_(mha.out_proj.weight)
            self.out.bias.copy_(mha.out_proj.bias)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, need_weights: bool = False,
                attn_mask: Tensor | None = None) -> tuple[Tensor, None]:
        if k is not q or v is not q:
            raise ValueError("LinearAttention is self-attention only: call it as attn(x, x, x)")
        x = q if self.batch_first else q.transpose(0, 1)  # (B, L, E)
        b, n, e = x.shape
        qkv = self.qkv(x).view(b, n, 3, self.heads, e // self.heads).permute(2, 0, 3, 1, 4)  # (3, B, H, L, E/H)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        y = self.out(y.transpose(1, 2).reshape(b, n, e))
        return (y if self.batch_first else y.transpose(0, 1)), None


def int8_tower(visual: nn.Module) -> nn.Module:
    """An int8 copy of an open_clip vision tower (module doc); ``visual`` is untouched."""
    import warnings

    tower = copy.deepcopy(visual).float().eval()
    for module in list(tower.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.MultiheadAttention):
                setattr(module, name, LinearAttention(child))
    with warnings.catch_warnings():  # torch.ao's notice that eager quantization is moving to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(tower, {nn.Linear}, dtype=torch.qint8).requires_grad_(False)


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
        if self.precision == "int8" and visual is None:
            raise ValueError("precision 'int8' needs an open_clip vision tower (clip_model.model.visual)")
        self._visual: nn.Module | None = None
        self._dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        self.int8_error: float | None = None
        """int8 only: the measured max cosine error against float32 on the first frames encoded."""
        if self.precision == "bf16" and visual is not None:
            self._visual = copy.deepcopy(visual).to(torch.bfloat16).eval().requires_grad_(False)
        elif self.precision == "int8" and visual is not None:
            self._visual = int8_tower(visual)

    @torch.inference_mode()
    def encode(self, frames: Tensor) -> Tensor:
        """(N, H, W, 3) uint8 frames -> (N, E) unit float32 features. int8: the first call also encodes up to
        :data:`INT8_CHECK_FRAMES` of its frames in float32 and raises :class:`QuantizationError` when they differ
        by more than :data:`INT8_MAX_COSINE_ERROR`."""
        if self._visual is None:
            return self.clip_model.encode_images(frames, batch_size=self.batch_size).float()
        visual = self._visual
        out = [F.normalize(visual(self.clip_model.preprocess(chunk).to(self._dtype)).float(), dim=-1)
               for chunk in frames.split(self.batch_size)]
        feats = torch.cat(out) if out else torch.empty(0, self.clip_model.embed_dim)
        if self.precision == "int8" and self.int8_error is None and len(frames):
            k = INT8_CHECK_FRAMES
            self.int8_error = max_cosine_error(feats[:k], self.clip_model.encode_images(frames[:k]).float())
            if self.int8_error > INT8_MAX_COSINE_ERROR:
                raise QuantizationError(
                    f"int8 CLIP features of these weights differ from float32 by a cosine error of "
                    f"{self.int8_error:.2e} (> {INT8_MAX_COSINE_ERROR:.0e} accepted); use precision 'fp32' "
                    f"(--precision fp32)")
        return feats

    @property
    def description(self) -> str:
        checked = f", max cosine error vs fp32 {self.int8_error:.1e}" if self.int8_error is not None else ""
        return f"batched ({self.batch_size}) {self.precision}{checked}"


def max_cosine_error(a: Tensor, b: Tensor) -> float:
    """max over rows of 1 - cos(a_i, b_i) for (N, E) features."""
    return float((1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)).max())
