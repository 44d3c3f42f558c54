"""Training the domain text–image model (:mod:`anyskill.domain.model`; "domain model of this humanoid, closed
vocabulary — not CLIP") on captioned renders, with a multi-positive InfoNCE loss.

Each step draws a batch of B training frames (weighted by 1/sqrt of how often their exact fact set occurs, so rare
poses are seen), writes one caption per frame (:func:`~anyskill.domain.captions.caption_frame` with the
training phrasings; with probability ``p_clip`` the clip's manifest description, with ``p_lexicon`` an offline-lexicon
pose description the frame satisfies), and scores all B x B pairs. Several frames can satisfy one caption ("arms
down" fits many), so the positives of caption i are all frames j it matches
(:func:`~anyskill.domain.captions.matches`) and the loss is

    L = -1/B sum_i log sum_{j in P(i)} softmax_j(s t_i . v_j)  (text -> image)  + the same image -> text, halved,

with unit features t, v and the learnt scale s (CLIP's InfoNCE when every caption fits exactly one frame). Images are
preprocessed once, exactly as :meth:`ClipModel.preprocess` does, and shifted by up to ``shift_px`` pixels. Each word
token of a caption becomes the unknown token with probability ``word_dropout``, so that a prompt with a word outside
the closed vocabulary is read from its known words instead of being thrown off by an untrained embedding. After
training a :class:`~anyskill.reward.projection.StateProjection` is fitted from body positions to this model's image
features (the high-level policy's projection reward).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anyskill.config.domain import DomainModelConfig, DomainTrainSettings
from anyskill.domain.captions import (
    FACTS,
    PHRASES,
    Caption,
    caption_frame,
    clip_caption,
    lexicon_captions,
    matches,
    phrase_split,
    template_split,
)
from anyskill.domain.model import EOT, SOT, DomainTextImageModel, preprocess_like_clip
from anyskill.reward.projection import ProjectionFit, StateProjection, fit_projection

Tensor = torch.Tensor


def tokenizer():
    """open_clip's bundled BPE tokenizer (the ViT-B-32 one): list[str] -> (P, 77) ids."""
    import open_clip

    return open_clip.get_tokenizer("ViT-B-32")


def training_texts(clip_descriptions: list[str]) -> list[str]:
    """Every phrase and sentence the training captions can contain (the closed vocabulary comes from these)."""
    texts = [t.format(x=p) for n in FACTS for p in phrase_split(n, "train") for t in template_split("train")]
    return texts + list(clip_descriptions) + [c.text for c in lexicon_captions()]


def build_vocab(texts: list[str]) -> Tensor:
    """(V,) sorted open_clip token ids occurring in ``texts`` (start and end tokens included)."""
    ids = tokenizer()(texts)
    return torch.unique(ids[ids != 0])


def preprocess_all(frames: Tensor, image_size: int, chunk: int = 512) -> Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, S, S) float16, preprocessed as :meth:`ClipModel.preprocess`."""
    return torch.cat([preprocess_like_clip(frames[i:i + chunk], image_size).half()
                      for i in range(0, len(frames), chunk)])


def _shift(x: Tensor, max_px: int, gen: torch.Generator) -> Tensor:
    """Random integer translations of (B, 3, S, S) images by up to ``max_px`` (edge pixels replicated), 4 groups."""
    if max_px <= 0:
        return x
    s = x.shape[-1]
    pad = F.pad(x, (max_px,) * 4, mode="replicate")
    out = torch.empty_like(x)
    for idx in torch.arange(len(x)).chunk(4):
        dy, dx = (int(v) for v in torch.randint(0, 2 * max_px + 1, (2,), generator=gen))
        out[idx] = pad[idx, :, dy:dy + s, dx:dx + s]
    return out


def drop_words(tokens: Tensor, p: float, unknown_id: int, gen: torch.Generator) -> Tensor:
    """(B, L) open_clip ids -> the same with each word token (not padding, start or end) replaced by ``unknown_id``
    (an id outside the vocabulary) with probability ``p``."""
    if p <= 0:
        return tokens
    word = (tokens != 0) & (tokens != SOT) & (tokens != EOT)
    drop = word & (torch.rand(tokens.shape, generator=gen) < p)
    return torch.where(drop, torch.full_like(tokens, unknown_id), tokens)


def multi_positive_infonce(text: Tensor, image: Tensor, positives: Tensor, scale: Tensor) -> Tensor:
    """text (B, E), image (B, E) unit features, positives (B, B) bool (caption i fits frame j), scale s > 0 -> the
    symmetric multi-positive InfoNCE loss (module docstring)."""
    logits = scale * text @ image.T
    neg = torch.finfo(logits.dtype).min
    t2i = torch.logsumexp(logits.masked_fill(~positives, neg), 1) - torch.logsumexp(logits, 1)
    i2t = torch.logsumexp(logits.T.masked_fill(~positives.T, neg), 1) - torch.logsumexp(logits.T, 1)
    return -0.5 * (t2i.mean() + i2t.mean())


class CaptionSampler:
    """Draws one training caption per frame (module docstring) and tokenizes it (cached per text)."""

    def __init__(self, clip_descriptions: list[str], settings: DomainTrainSettings, seed: int):
        self.rng = np.random.default_rng(seed)
        self.s = settings
        self.clip_caps = [clip_caption(d, i) for i, d in enumerate(clip_descriptions)]
        self.lexicon = lexicon_captions()
        self.tok = tokenizer()
        self._cache: dict[str, Tensor] = {}

    def caption(self, mask: int, clip_id: int) -> Caption:
        u = self.rng.random()
        if clip_id >= 0 and u < self.s.p_clip:
            return self.clip_caps[clip_id]
        if u < self.s.p_clip + self.s.p_lexicon:
            fitting = [c for c in self.lexicon if mask & c.mask == c.mask]
            if fitting:
                return fitting[int(self.rng.integers(len(fitting)))]
        cap = caption_frame(mask, self.rng, "train", self.s.max_facts)
        assert cap is not None  # every frame is upright or fallen
        return cap

    def tokens(self, texts: list[str]) -> Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            self._cache.update(zip(missing, self.tok(missing), strict=True))
        return torch.stack([self._cache[t] for t in texts])


@dataclass
class DomainTrainResult:
    model: DomainTextImageModel
    projection: StateProjection
    projection_fit: ProjectionFit
    losses: list[float]
    info: dict[str, Any]


def train_domain_model(frames: Tensor, masks: Tensor, clip_id: Tensor, body_pos: Tensor, train: Tensor,
                       clip_descriptions: list[str], cfg: DomainModelConfig | None = None,
                       settings: DomainTrainSettings | None = None, progress: bool = False) -> DomainTrainResult:
    """Train on the frames where ``train`` (N,) is True: frames (N, H, W, 3) uint8 renders, masks (N,) int64 fact
    bits, clip_id (N,) (-1: not a clip frame), body_pos (N, 15, 3) m (for the projection). Returns the model (eval
    mode), the fitted projection, the loss per step and an info dict (times, steps, sizes)."""
    cfg = cfg or DomainModelConfig()
    settings = settings or DomainTrainSettings()
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    t0, c0 = time.perf_counter(), time.process_time()
    vocab = build_vocab(training_texts(clip_descriptions))
    model = DomainTextImageModel(cfg, vocab)
    known = set(vocab.tolist())
    unknown_id = next(i for i in range(1, SOT) if i not in known)
    pre = preprocess_all(frames, cfg.image_size)
    train_ids = train.nonzero().flatten()
    _, inv, counts = torch.unique(masks[train_ids], return_inverse=True, return_counts=True)
    weights = counts[inv].double().rsqrt()
    sampler = CaptionSampler(clip_descriptions, settings, settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)

    planned = settings.steps

    def lr_at(step: int) -> float:
        warmup = min(settings.warmup_steps, planned // 5)
        if step < warmup:
            return settings.lr * (step + 1) / warmup
        frac = (step - warmup) / max(1, planned - warmup)
        return settings.lr * 0.5 * (1 + np.cos(np.pi * min(1.0, frac)))

    losses: list[float] = []
    it = range(settings.steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="domain model")
    model.train()
    steps_done = 0
    t_loop = time.perf_counter()
    for step in it:
        if step >= planned:
            break
        if settings.time_budget_s is not None and step == 10:
            per_step = (time.perf_counter() - t_loop) / 10
            left = settings.time_budget_s - (time.perf_counter() - t0)
            planned = max(20, min(settings.steps, int(10 + left / per_step)))
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        idx = train_ids[torch.multinomial(weights, settings.batch_size, replacement=False, generator=gen)]
        caps = [sampler.caption(int(m), int(c)) for m, c in zip(masks[idx], clip_id[idx], strict=True)]
        tokens = drop_words(sampler.tokens([c.text for c in caps]), settings.word_dropout, unknown_id, gen)
        positives = matches(torch.tensor([c.mask for c in caps], dtype=torch.int64), masks[idx])
        img = F.normalize(model.encode_image(_shift(pre[idx].float(), settings.shift_px, gen)), dim=-1)
        txt = F.normalize(model.encode_text(tokens), dim=-1)
        loss = multi_positive_infonce(txt, img, positives, model.logit_scale.exp().clamp_max(100.0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        steps_done = step + 1
        if progress and step % 20 == 0:
            it.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")  # type: ignore[attr-defined]
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    model.eval()
    with torch.no_grad():
        feats = torch.cat([F.normalize(model.encode_image(pre[i:i + 512].float()), dim=-1)
                           for i in range(0, len(pre), 512)])
    torch.manual_seed(settings.seed)
    projection = StateProjection(body_pos.shape[1], cfg.embed_dim, settings.projection_hidden)
    fit = fit_projection(projection, body_pos[train_ids].float(), feats[train_ids], epochs=settings.projection_epochs,
                         seed=settings.seed)
    projection.eval()
    info = {"steps": steps_done, "planned_steps": planned, "train_frames": len(train_ids), "vocab_size": len(vocab),
            "train_wall_s": round(train_s, 1), "train_cpu_s": round(train_cpu, 1),
            "torch_threads": torch.get_num_threads(), "final_loss": float(np.mean(losses[-50:])) if losses else None,
            "projection_val_cosine": round(fit.final_val_cosine, 4), "settings": asdict(settings),
            "config": asdict(cfg), "phrasings": {n: len(p) for n, p in PHRASES.items()}}
    return DomainTrainResult(model, projection, fit, losses, info)
