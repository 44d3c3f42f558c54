"""The project's own text–image model of this humanoid's renders — a **domain model of this humanoid, closed
vocabulary — not CLIP** — behind the same interface as open_clip (:class:`~anyskill.reward.clip_model.ClipModel`,
``ClipSpec(weights="anyskill-domain")``: the reward layer's weights registry,
:data:`~anyskill.reward.clip_model.WEIGHT_PROVIDERS`, names this module as the provider of those weights, which
reads :func:`describe_weights` and :func:`load_weights`).

No pretrained CLIP weights can be fetched offline, and random ViT-B/32 weights give every frame nearly the same
feature. This model is trained by the project (:mod:`anyskill.domain.train`) on renders of this humanoid made
with the project's camera, captioned by rules from the measured body positions
(:mod:`anyskill.domain.captions`), so a text prompt about this humanoid's pose gives a reward that means
something — within its closed vocabulary (the words of its captions) and only for this character, camera and floor.

* image tower: a small CNN on (3, 64, 64) inputs preprocessed exactly as :meth:`ClipModel.preprocess` does
  (centre crop, antialiased bicubic resize, CLIP mean/std) -> (E,) feature;
* text tower: open_clip's bundled BPE tokenizer (``open_clip.get_tokenizer``, 77 tokens) whose ids are mapped to the
  model's closed vocabulary (ids never seen in training become one unknown token), a 2-layer transformer and the
  end-of-text token's state projected to (E,).

Both towers expose what :class:`ClipModel` reads from an open_clip model: ``encode_image`` (N, 3, S, S) -> (N, E),
``encode_text`` (P, 77) -> (P, E), ``visual.image_size``, ``text_projection`` (W, E) and ``context_length``.
The checkpoint also holds a :class:`~anyskill.reward.projection.StateProjection` fitted to this model's image
features (body positions -> feature), for the high-level policy's projection reward.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from anyskill.config.domain import DomainModelConfig
from anyskill.reward.clip_model import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    _hub_reachable,
    cached_weights_file,
    preprocess_frames,
)
from anyskill.reward.projection import StateProjection

Tensor = torch.Tensor

DOMAIN_WEIGHTS = "anyskill-domain"
"""The ``ClipSpec.weights`` value that selects the shipped domain model; ``"anyskill-domain:/path/file.pth"`` selects
another checkpoint of the same format."""
DOMAIN_LABEL = "domain model of this humanoid, closed vocabulary — not CLIP"
CHECKPOINT_FORMAT = "anyskill-domain-clip"
CHECKPOINT_VERSION = 1
SHIPPED_DOMAIN_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "anyskill_domain.pth"
SOT, EOT = 49406, 49407  # open_clip SimpleTokenizer's start / end of text ids


class ImageTower(nn.Module):
    """(N, 3, S, S) normalised images -> (N, E) features (not normalised). A stem conv and one stage per channel
    width: two 3x3 conv + batch norm + ReLU, the first with stride 2; global average pool; linear."""

    def __init__(self, cfg: DomainModelConfig):
        super().__init__()
        self.image_size = cfg.image_size
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in, cfg.embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).mean(dim=(-2, -1)))


class TextTower(nn.Module):
    """(P, L) open_clip token ids -> (P, E) features (not normalised). ``vocab`` (V,) sorted open_clip ids of the
    closed vocabulary; local id 0 is padding, 1 unknown, 2 + i the i-th vocabulary entry."""

    vocab: Tensor

    def __init__(self, cfg: DomainModelConfig, vocab: Tensor):
        super().__init__()
        self.register_buffer("vocab", vocab.long().sort().values)
        self.tokens = cfg.text_tokens
        self.embed = nn.Embedding(len(vocab) + 2, cfg.text_width)
        self.pos = nn.Parameter(0.01 * torch.randn(cfg.text_tokens, cfg.text_width))
        layer = nn.TransformerEncoderLayer(cfg.text_width, cfg.text_heads, 4 * cfg.text_width, dropout=0.0,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)
        self.text_projection = nn.Parameter(torch.randn(cfg.text_width, cfg.embed_dim) / cfg.text_width**0.5)

    def local_ids(self, tokens: Tensor) -> Tensor:
        """(P, L) open_clip ids -> (P, text_tokens) local ids (0 pad, 1 unknown)."""
        t = tokens[:, : self.tokens].long()
        if tokens.shape[1] > self.tokens:  # a prompt cut here keeps an end token for pooling
            cut = (tokens[:, self.tokens:] != 0).any(dim=1)
            t = t.clone()
            t[cut, -1] = EOT
        idx = torch.searchsorted(self.vocab, t).clamp_max(len(self.vocab) - 1)
        known = self.vocab[idx] == t
        return torch.where(t == 0, torch.zeros_like(t), torch.where(known, idx + 2, torch.ones_like(t)))

    def unknown_fraction(self, tokens: Tensor) -> Tensor:
        """(P,) fraction of each prompt's word tokens outside the closed vocabulary."""
        ids = self.local_ids(tokens)
        words = (ids != 0) & (tokens[:, : self.tokens] != SOT) & (tokens[:, : self.tokens] != EOT)
        return ((ids == 1) & words).sum(1) / words.sum(1).clamp_min(1)

    def forward(self, tokens: Tensor) -> Tensor:
        ids = self.local_ids(tokens)
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        x = self.norm(self.transformer(x, src_key_padding_mask=ids == 0))
        raw = tokens[:, : self.tokens]
        eot = torch.where((raw == EOT).any(1), (raw == EOT).float().argmax(1), (ids != 0).sum(1) - 1)
        return x[torch.arange(len(x)), eot] @ self.text_projection


class DomainTextImageModel(nn.Module):
    """The two towers and a learnt temperature; the open_clip-like surface :class:`ClipModel` uses."""

    context_length = 77  # what the open_clip tokenizer produces; the text tower reads the first text_tokens

    def __init__(self, cfg: DomainModelConfig, vocab: Tensor):
        super().__init__()
        self.cfg = cfg
        self.visual = ImageTower(cfg)
        self.text = TextTower(cfg, vocab)
        self.logit_scale = nn.Parameter(torch.tensor(2.659))  # log(1 / 0.07), as CLIP starts
        self.projection: StateProjection | None = None
        self.identity = "untrained"
        self.card: dict[str, Any] = {}

    @property
    def text_projection(self) -> Tensor:
        return self.text.text_projection

    def encode_image(self, images: Tensor) -> Tensor:
        """(N, 3, S, S) preprocessed -> (N, E) (not normalised)."""
        return self.visual(images.to(self.visual.head.weight.dtype))

    def encode_text(self, tokens: Tensor) -> Tensor:
        """(P, 77) open_clip token ids -> (P, E) (not normalised); warns when a prompt is mostly out of vocabulary."""
        if not self.training:
            unknown = self.text.unknown_fraction(tokens)
            if bool((unknown > 0.5).any()):
                warnings.warn(f"{int((unknown > 0.5).sum())} prompt(s) are mostly outside the closed vocabulary of the "
                              f"{DOMAIN_LABEL}; their features carry little meaning", stacklevel=3)
        return self.text(tokens)


def save_domain_model(model: DomainTextImageModel, path: str | Path, card: dict[str, Any] | None = None,
                      projection: StateProjection | None = None) -> Path:
    """Write a checkpoint (format :data:`CHECKPOINT_FORMAT`): config, vocabulary, weights, projection, card."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt: dict[str, Any] = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "label": DOMAIN_LABEL,
                            "config": asdict(model.cfg), "vocab": model.text.vocab.clone(),
                            "state_dict": model.state_dict(), "card": card or {}}
    if projection is not None:
        ckpt["projection"] = {"state_dict": projection.state_dict(), "num_bodies": projection.num_bodies,
                              "embed_dim": projection.embed_dim, "hidden": list(projection.hidden)}
    torch.save(ckpt, path)
    return path


def resolve_domain_weights(weights: str) -> Path:
    """``"anyskill-domain"`` -> the shipped checkpoint; ``"anyskill-domain:PATH"`` -> PATH. Raises if missing."""
    if weights == DOMAIN_WEIGHTS:
        path = SHIPPED_DOMAIN_MODEL
    elif weights.startswith(DOMAIN_WEIGHTS + ":"):
        path = Path(weights[len(DOMAIN_WEIGHTS) + 1:]).expanduser()
    else:
        raise ValueError(f"{weights!r} does not name a domain model ({DOMAIN_WEIGHTS!r} or '{DOMAIN_WEIGHTS}:PATH')")
    if not path.is_file():
        raise FileNotFoundError(f"domain model checkpoint {path} not found; build it with `anyskill train-domain-clip`")
    return path


def is_domain_weights(weights: str) -> bool:
    return weights == DOMAIN_WEIGHTS or weights.startswith(DOMAIN_WEIGHTS + ":")


_HASHES: dict[tuple[str, float, int], str] = {}


def weights_hash(path: str | Path, chars: int = 12) -> str:
    """First ``chars`` hex digits of the SHA-256 of the checkpoint file (cached per path, mtime and size)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_mtime, st.st_size)
    if key not in _HASHES:
        _HASHES[key] = hashlib.sha256(p.read_bytes()).hexdigest()
    return _HASHES[key][:chars]


def domain_description(weights: str) -> str:
    """The stable identity of a domain model for provenance and caches: name, content hash and the label."""
    try:
        digest = weights_hash(resolve_domain_weights(weights))
    except FileNotFoundError:
        digest = "missing"
    return f"{weights} sha256:{digest} ({DOMAIN_LABEL})"


def load_domain_model(weights: str | Path = DOMAIN_WEIGHTS, map_location: str = "cpu") -> DomainTextImageModel:
    """The model of a checkpoint (``weights``: :data:`DOMAIN_WEIGHTS`, ``"anyskill-domain:PATH"`` or a path), in
    eval mode, with its state projection (``model.projection``) and card (``model.card``)."""
    path = Path(weights) if isinstance(weights, Path) or not is_domain_weights(str(weights)) \
        else resolve_domain_weights(str(weights))
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint (format {ckpt.get('format')!r})")
    cfg_d = dict(ckpt["config"])
    cfg_d["channels"] = tuple(cfg_d["channels"])
    model = DomainTextImageModel(DomainModelConfig(**cfg_d), ckpt["vocab"])
    model.load_state_dict(ckpt["state_dict"])
    if "projection" in ckpt:
        p = ckpt["projection"]
        model.projection = StateProjection(p["num_bodies"], p["embed_dim"], tuple(p["hidden"]))
        model.projection.load_state_dict(p["state_dict"])
        model.projection.eval()
    model.card = dict(ckpt.get("card") or {})
    model.identity = f"sha256:{weights_hash(path)}"
    return model.eval()


def describe_weights(weights: str) -> str:
    """The weights registry's description of ``weights`` (:data:`DOMAIN_WEIGHTS` or ``"anyskill-domain:PATH"``):
    :func:`domain_description`."""
    return domain_description(weights)


def load_weights(weights: str) -> DomainTextImageModel:
    """The weights registry's loader of ``weights``: :func:`load_domain_model`."""
    return load_domain_model(weights)


def preprocess_like_clip(frames: Tensor, image_size: int) -> Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, S, S) float32 exactly as :meth:`ClipModel.preprocess` feeds this model."""
    return preprocess_frames(frames, (image_size, image_size))


def unit(x: Tensor) -> Tensor:
    return F.normalize(x.float(), dim=-1)


def choose_clip_weights(requested: str = "", scale: str = "smoke") -> str:
    """The text–image weights a notebook or command uses when the user did not say (``requested`` empty): pretrained
    open_clip ``laion2b_s34b_b79k`` when it is in the local cache (or, above ``smoke``, downloadable), else the
    :data:`DOMAIN_WEIGHTS` model — never random weights silently. A non-empty ``requested`` is returned as given
    (``"random"``, a tag, a file or ``"anyskill-domain"``)."""
    if requested:
        return requested
    try:
        if cached_weights_file(DEFAULT_MODEL, DEFAULT_PRETRAINED) is not None:
            return DEFAULT_PRETRAINED
    except Exception:  # a missing or broken hub cache is the same as no weights
        pass
    if scale != "smoke" and _hub_reachable():
        return DEFAULT_PRETRAINED
    return DOMAIN_WEIGHTS


def reward_model_note(spec: Any) -> str:
    """The caveat every figure and table scored by ``spec`` (a :class:`ClipSpec`) must carry: the domain model's label,
    the random-weight warning, or "" for real CLIP weights."""
    if getattr(spec, "is_domain", False):
        return f"scored by the {DOMAIN_LABEL}"
    if getattr(spec, "is_random", False):
        return "RANDOM CLIP WEIGHTS: similarities meaningless"
    return ""
