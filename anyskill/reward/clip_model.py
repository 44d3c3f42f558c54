"""CLIP through open_clip: text features cached per prompt, image features from rendered frames (paper §3.2).

Weights, in order of preference:

* a **pretrained tag** (default ``ViT-B-32`` / ``laion2b_s34b_b79k``, the authors' choice), loaded from the user's
  Hugging Face / open_clip cache, or downloaded when the machine has a network;
* a **local checkpoint file** (``weights="/path/to/open_clip_pytorch_model.bin"``);
* ``weights="random"`` — random initialisation (seeded: the same weights every time), explicitly requested, for
  tests and offline pipeline runs only:
  random-weight features carry no meaning (renders of very different poses have cosine ≈ 0.9997–1.0);
* ``weights="anyskill-domain"`` (or ``"anyskill-domain:/path/file.pth"``) — not CLIP: the project's own small
  text–image model of this humanoid's renders, closed vocabulary (:mod:`anyskill.domain.model`), offline; found
  through the weights registry :data:`WEIGHT_PROVIDERS`.

Without any of them a :class:`ClipWeightsUnavailable` error explains the three ways; nothing hangs and nothing
falls back silently.
"""

from __future__ import annotations

import importlib
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

DEFAULT_MODEL = "ViT-B-32"
DEFAULT_PRETRAINED = "laion2b_s34b_b79k"
RANDOM_WEIGHTS_SEED = 0
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


WEIGHT_PROVIDERS: dict[str, str] = {"anyskill-domain": "anyskill.domain.model"}
"""The weights registry: text–image models that are not open_clip's, by the ``ClipSpec.weights`` name that selects
them (``NAME``, or ``NAME:PATH`` for another checkpoint of the same kind) -> the module that provides them, with
``describe_weights(weights) -> str`` (the identity a result's provenance records) and ``load_weights(weights)`` (a
module with the open_clip surface :class:`ClipModel` reads). A provider sits above this layer (the domain model is
trained on this layer's features and renders), so this layer names it here and imports it only when its weights are
asked for (:func:`weights_provider`); nothing else of ``anyskill.reward`` refers to it. :func:`register_weights` adds
one."""


class ClipWeightsUnavailable(RuntimeError):
    """No CLIP weights could be loaded; the message lists the ways to provide them."""


def register_weights(name: str, module: str) -> None:
    """Make ``ClipSpec(weights=name)`` (and ``name:PATH``) load through ``module`` (see :data:`WEIGHT_PROVIDERS`)."""
    if not name or ":" in name:
        raise ValueError(f"a weights name is non-empty and has no ':', got {name!r}")
    WEIGHT_PROVIDERS[name] = module


def provider_name(weights: str) -> str | None:
    """The registered name that selects ``weights`` (None: open_clip weights: a tag, a file or "random")."""
    return next((n for n in WEIGHT_PROVIDERS if weights == n or weights.startswith(n + ":")), None)


def weights_provider(weights: str) -> ModuleType | None:
    """The provider module of ``weights`` (imported now), None for open_clip weights."""
    name = provider_name(weights)
    return None if name is None else importlib.import_module(WEIGHT_PROVIDERS[name])


@dataclass(frozen=True)
class ClipSpec:
    """Which CLIP to load. ``weights``: a pretrained tag, a path to a checkpoint file, or ``"random"``."""

    model: str = DEFAULT_MODEL
    weights: str = DEFAULT_PRETRAINED
    device: str = "cpu"
    half: bool = False  # fp16 on CUDA
    download: bool = True  # allow a hub download when the tag is not cached

    @property
    def description(self) -> str:
        """What the provenance of a result records as 'CLIP weights'."""
        provider = weights_provider(self.weights)
        if provider is not None:
            return provider.describe_weights(self.weights)
        return f"{self.model}/{self.weights}" + (" (RANDOM: no meaningful similarity)" if self.is_random else "")

    @property
    def is_domain(self) -> bool:
        """Weights of a registered provider (:data:`WEIGHT_PROVIDERS`): the project's domain model of this humanoid
        (closed vocabulary, not CLIP), not open_clip's."""
        return provider_name(self.weights) is not None

    @property
    def is_random(self) -> bool:
        return self.weights == "random"


def cached_weights_file(model: str, tag: str) -> Path | None:
    """The checkpoint of an open_clip pretrained tag in the local Hugging Face cache, if it is there."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    cfg = open_clip.get_pretrained_cfg(model, tag) or {}
    repo = (cfg.get("hf_hub") or "").strip("/")
    if not repo:
        return None
    for filename in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _create(spec: ClipSpec):
    import open_clip

    provider = weights_provider(spec.weights)
    if provider is not None:
        return provider.load_weights(spec.weights)
    if spec.is_random:  # the same random weights every time (reruns comparable), the caller's RNG untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)
            return open_clip.create_model(spec.model, pretrained=None)
    if Path(spec.weights).expanduser().is_file():
        return open_clip.create_model(spec.model, pretrained=str(Path(spec.weights).expanduser()))
    if spec.weights not in open_clip.list_pretrained_tags_by_model(spec.model):
        raise ClipWeightsUnavailable(
            f"{spec.weights!r} is neither a file nor a pretrained tag of {spec.model} "
            f"(tags: {open_clip.list_pretrained_tags_by_model(spec.model)})"
        )
    cached = cached_weights_file(spec.model, spec.weights)
    if cached is not None:
        return open_clip.create_model(spec.model, pretrained=str(cached))
    errors = ["not in the local Hugging Face cache"]
    if spec.download:
        if _hub_reachable():
            try:
                return open_clip.create_model(spec.model, pretrained=spec.weights)
            except Exception as e:  # network or hub errors come in many types
                errors.append(f"download failed: {type(e).__name__}: {e}")
        else:
            errors.append("huggingface.co is not reachable from this machine")
    raise ClipWeightsUnavailable(
        f"could not load CLIP weights {spec.model}/{spec.weights} ({'; '.join(errors)[:400]}).\n"
        "Provide them in one of three ways:\n"
        f"  1. on a machine with a network, run once: python -c \"import open_clip; "
        f"open_clip.create_model('{spec.model}', "
        f"pretrained='{spec.weights}')\"  (fills the Hugging Face cache, ~600 MB; copy ~/.cache/huggingface to "
        "offline machines);\n"
        "  2. pass a local checkpoint file: weights='/path/to/open_clip_pytorch_model.bin' (CLI: --clip-weights "
        "PATH);\n"
        "  3. for tests or an offline dry run only, weights='random' (random features: similarities are meaningless)."
    )


def preprocess_frames(frames: torch.Tensor, image_size: tuple[int, int], raw_pixels: bool = False) -> torch.Tensor:
    """(N, H, W, 3) uint8 (or float in [0, 1]) -> (N, 3, S, S) float32 model input on the frames' device: centre crop
    to a square, antialiased bicubic resize to ``image_size``, CLIP mean/std. ``raw_pixels``: 0-255 values, no resize
    or normalisation (the authors' quirk, see :class:`ClipModel`). The domain model is trained on exactly this."""
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (N, H, W, 3) RGB, got {tuple(frames.shape)}")
    x = frames.permute(0, 3, 1, 2).float()
    if raw_pixels:
        if x.max() <= 1.0 and frames.dtype != torch.uint8:
            x = x * 255.0
        return x
    if frames.dtype == torch.uint8:
        x = x / 255.0
    h, w = x.shape[-2:]
    s = min(h, w)  # centre crop to a square, then resize (CLIP's own preprocessing)
    top, left = (h - s) // 2, (w - s) // 2
    x = x[..., top : top + s, left : left + s]
    if (s, s) != tuple(image_size):
        x = F.interpolate(x, size=tuple(image_size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class ClipModel(torch.nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    """Frozen CLIP: ``encode_text(prompts) -> (P, 512)``, ``encode_images(frames) -> (N, 512)``, unit-norm features.

    ``raw_pixels=True`` reproduces the authors' quirk (reference facts §4): 0–255 RGB values fed to the vision
    tower without resizing or mean/std normalisation. The default is proper CLIP preprocessing.
    """

    def __init__(self, spec: ClipSpec = ClipSpec(), raw_pixels: bool = False):
        super().__init__()
        import open_clip

        if raw_pixels and spec.is_domain:
            raise ValueError("raw_pixels=True is the authors' CLIP quirk; the domain model was trained on normalised "
                             "inputs")
        self.spec = spec
        self.raw_pixels = raw_pixels
        self.model = _create(spec).eval().requires_grad_(False).to(spec.device)
        if spec.half and spec.device.startswith("cuda"):
            self.model = self.model.half()
        self.tokenizer = open_clip.get_tokenizer(spec.model)
        self.context_length = int(getattr(self.model, "context_length", 77))
        size = self.model.visual.image_size
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.to(spec.device)
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def embed_dim(self) -> int:
        return int(self.model.text_projection.shape[1]) if hasattr(self.model, "text_projection") else 512

    def _check_length(self, prompt: str) -> None:
        inner = getattr(self.tokenizer, "tokenizer", self.tokenizer)
        if hasattr(inner, "encode"):
            n = len(inner.encode(prompt)) + 2  # start and end tokens
            if n > self.context_length:
                warnings.warn(
                    f"prompt has {n} tokens, more than CLIP's context of {self.context_length}; it is truncated: "
                    f"{prompt[:60]!r}...",
                    stacklevel=3,
                )

    @torch.no_grad()
    def encode_text(self, prompts: list[str] | str) -> torch.Tensor:
        """(P, E) unit-norm text features; cached per prompt."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        missing = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        if missing:
            for p in missing:
                self._check_length(p)
            tokens = self.tokenizer(missing).to(self.device)
            feats = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            self._text_cache.update(zip(missing, feats, strict=True))
        return torch.stack([self._text_cache[p] for p in prompts])

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 (or float in [0, 1]) -> (N, 3, S, S) model input on the model's device."""
        return preprocess_frames(frames.to(self.device), self.image_size, self.raw_pixels).to(self.dtype)

    @torch.no_grad()
    def encode_images(self, frames: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """(N, H, W, 3) frames -> (N, E) unit-norm image features (float32)."""
        out = []
        for chunk in frames.split(batch_size):
            out.append(F.normalize(self.model.encode_image(self.preprocess(chunk)).float(), dim=-1))
        return torch.cat(out) if out else torch.empty(0, self.embed_dim, device=self.device)

    def similarity(self, frames: torch.Tensor, prompt: str) -> torch.Tensor:
        """(N,) cosine similarity between frames and one prompt."""
        return self.encode_images(frames) @ self.encode_text(prompt)[0]
