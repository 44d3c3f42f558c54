"""Held-out retrieval and per-attribute accuracy of a text–image model on captioned renders of this humanoid.

Works through the :class:`~anyskill.reward.clip_model.ClipModel` interface (``encode_images`` of uint8 frames,
``encode_text`` of strings), so the domain model ("domain model of this humanoid, closed vocabulary — not CLIP")
and random ViT-B/32 weights (the floor) are measured by the same code on the same frames and captions.

* **Retrieval**: a gallery of G held-out frames, each with one caption written by the captioner
  (:func:`~anyskill.domain.captions.caption_frame`) in the ``split``'s phrasings. Text -> image R@K: the share
  of captions with at least one matching frame (all its facts true) among their K nearest frames; image -> text
  R@K: the share of frames with a caption that fits them among their K nearest captions. Several frames fit one
  caption, so chance is not 1/G: ``chance_t2i_r1`` / ``chance_i2t_r1`` are the expected R@1 of a random ranking.
* **Per attribute**: for each fact with at least ``min_count`` held-out frames with and without it, the cosine of
  each frame with the fact's phrase (first phrasing of the split, first template) separates them with ROC-AUC;
  accuracy is balanced accuracy at the threshold that is best on the other half of the frames (two-fold).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from anyskill.domain.captions import FACT_BIT, FACTS, caption_frame, matches, phrase_split, template_split

Tensor = torch.Tensor


class TextImageModel(Protocol):
    def encode_images(self, frames: Tensor, batch_size: int = 64) -> Tensor: ...

    def encode_text(self, prompts: list[str] | str) -> Tensor: ...


def recall_at_k(scores: Tensor, relevant: Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """scores (Q, G) and relevant (Q, G) bool -> {k: share of queries with a relevant item in their top k}."""
    order = scores.argsort(dim=1, descending=True)
    hit = relevant.gather(1, order)
    return {k: float(hit[:, :k].any(1).float().mean()) for k in ks}


def roc_auc(scores: Tensor, labels: Tensor) -> float:
    """Area under the ROC curve of scores (N,) for bool labels (N,) (ties counted half)."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).float().mean()
    ties = (pos[:, None] == neg[None, :]).float().mean()
    return float(greater + 0.5 * ties)


def _best_threshold(scores: Tensor, labels: Tensor) -> float:
    cands = scores.unique()
    best, thr = -1.0, float(cands[0])
    for c in cands:
        ba = _balanced_accuracy(scores >= c, labels)
        if ba > best:
            best, thr = ba, float(c)
    return thr


def _balanced_accuracy(pred: Tensor, labels: Tensor) -> float:
    tpr = (pred & labels).sum() / labels.sum().clamp_min(1)
    tnr = (~pred & ~labels).sum() / (~labels).sum().clamp_min(1)
    return float(0.5 * (tpr + tnr))


@torch.no_grad()
def retrieval_metrics(model: TextImageModel, frames: Tensor, masks: Tensor, split: str, seed: int = 0,
                      image_features: Tensor | None = None) -> dict[str, float]:
    """Retrieval on frames (G, H, W, 3) uint8 with fact masks (G,) int64, captions in ``split`` phrasings."""
    rng = np.random.default_rng(seed)
    caps = [caption_frame(int(m), rng, split) for m in masks]
    keep = torch.tensor([c is not None for c in caps])
    caps_kept = [c for c in caps if c is not None]
    img = image_features if image_features is not None else model.encode_images(frames)
    img = img[keep]
    txt = model.encode_text([c.text for c in caps_kept])
    fit = matches(torch.tensor([c.mask for c in caps_kept], dtype=torch.int64), masks[keep])  # (caption, frame)
    sim = txt @ img.T
    t2i = recall_at_k(sim, fit)
    i2t = recall_at_k(sim.T, fit.T)
    return {"gallery": int(keep.sum()), "t2i_r1": t2i[1], "t2i_r5": t2i[5], "i2t_r1": i2t[1], "i2t_r5": i2t[5],
            "chance_t2i_r1": float(fit.float().mean(1).mean()), "chance_i2t_r1": float(fit.float().mean(0).mean())}


@torch.no_grad()
def attribute_metrics(model: TextImageModel, frames: Tensor, masks: Tensor, split: str, min_count: int = 10,
                      seed: int = 0, image_features: Tensor | None = None) -> list[dict[str, float | str | int]]:
    """Per-fact ROC-AUC and two-fold balanced accuracy (module docstring) on frames (N, H, W, 3) with masks (N,)."""
    img = image_features if image_features is not None else model.encode_images(frames)
    fold = torch.from_numpy(np.random.default_rng(seed).random(len(masks)) < 0.5)
    rows: list[dict[str, float | str | int]] = []
    for name in FACTS:
        labels = (masks >> FACT_BIT[name]) & 1 == 1
        n_pos = int(labels.sum())
        if n_pos < min_count or len(labels) - n_pos < min_count:
            continue
        prompt = template_split(split)[0].format(x=phrase_split(name, split)[0])
        scores = img @ model.encode_text(prompt)[0]
        correct = 0.0
        for a, b in ((fold, ~fold), (~fold, fold)):
            if labels[a].any() and (~labels[a]).any() and b.any():
                thr = _best_threshold(scores[a], labels[a])
                correct += 0.5 * _balanced_accuracy(scores[b] >= thr, labels[b])
            else:
                correct += 0.25
        rows.append({"fact": name, "prompt": prompt, "positives": n_pos, "frames": len(labels),
                     "auc": round(roc_auc(scores, labels), 4), "balanced_accuracy": round(correct, 4)})
    return rows
