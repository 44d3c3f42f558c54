"""How well a state projection stands in for render + CLIP: measured on held-out frames.

Two numbers per calibration (:func:`projection_fidelity`):

* the **feature cosine** between the projected and the rendered CLIP image feature of each held-out frame (mean,
  5th percentile, minimum);
* per prompt, the **rank correlation** (Spearman's ρ) over the held-out frames between the text similarity computed
  from the projected features and from the rendered ones: what the reward needs is the *ordering* of frames by
  similarity to the prompt, not the feature itself.

With random CLIP weights both still measure something: how well the projection reproduces *that random encoder*.
They say nothing about whether the reward follows a prompt; :data:`RANDOM_MEANING` labels them so.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

Tensor = torch.Tensor

RANDOM_MEANING = ("random CLIP weights: these numbers measure how well the projection reproduces a random encoder, "
                  "not whether the reward follows a prompt")
PRETRAINED_MEANING = "projected vs rendered CLIP features of held-out frames of controller rollouts"


def rank_correlation(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    """Spearman's ρ of two (M,) score vectors (ties get average ranks); NaN when either is constant."""
    x = np.asarray(a.detach().cpu() if isinstance(a, Tensor) else a, dtype=np.float64)
    y = np.asarray(b.detach().cpu() if isinstance(b, Tensor) else b, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def projection_fidelity(projected: Tensor, rendered: Tensor, text_features: Tensor, prompts: list[str],
                        random_weights: bool) -> dict:
    """Fidelity of projected features (M, E) against rendered ones (M, E) on the same M held-out frames, for the
    unit text features (P, E) of ``prompts``. Returns a JSON-able dict (see module doc)."""
    if projected.shape != rendered.shape or len(projected) < 2:
        raise ValueError(f"need >= 2 held-out frames with matching shapes, got {tuple(projected.shape)} and "
                         f"{tuple(rendered.shape)}")
    if len(prompts) != len(text_features):
        raise ValueError(f"{len(prompts)} prompts but {len(text_features)} text features")
    p, r = F.normalize(projected.float(), dim=-1), F.normalize(rendered.float(), dim=-1)
    cos = (p * r).sum(-1)
    t = F.normalize(text_features.float(), dim=-1)
    sims_p, sims_r = p @ t.T, r @ t.T  # (M, P)
    rho = {prompt: rank_correlation(sims_p[:, i], sims_r[:, i]) for i, prompt in enumerate(prompts)}
    finite = [v for v in rho.values() if np.isfinite(v)]
    return {
        "heldout_frames": int(len(p)),
        "feature_cosine_mean": float(cos.mean()),
        "feature_cosine_p05": float(torch.quantile(cos, 0.05)),
        "feature_cosine_min": float(cos.min()),
        "text_rank_correlation": rho,
        "text_rank_correlation_mean": float(np.mean(finite)) if finite else float("nan"),
        "rendered_text_similarity_spread": float(sims_r.std(0).mean()),
        "meaning": RANDOM_MEANING if random_weights else PRETRAINED_MEANING,
    }
