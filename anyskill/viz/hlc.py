"""Figures of the high-level policy: learning curves with reward terms and early-termination events, filmstrips."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from anyskill.viz.training import plot_curves, stats_frame

HLC_PANELS = (
    ("goal similarity", ["similarity"]),
    ("reward terms (Eq. 3)", ["reward", "reward_clip", "reward_latent"]),
    ("resets per epoch", ["et_similarity_resets", "et_fall_resets", "time_out_resets"]),
    ("head height (m)", ["head_height"]),
)


def plot_hlc_curves(epoch_stats: list[dict] | pd.DataFrame, title: str = ""):
    """Curves of a ``train_hlc`` run (its ``epoch_stats``, or its ``epoch_stats.csv`` as a DataFrame)."""
    return plot_curves(stats_frame(epoch_stats), panels=HLC_PANELS, title=title)


def filmstrip(frames: np.ndarray, times: np.ndarray, similarity: np.ndarray | None = None, num: int = 6,
              title: str = ""):
    """A row of rendered frames (T, H, W, 3) evenly spaced in time, each labelled with its time and similarity."""
    picks = np.linspace(0, len(frames) - 1, num).round().astype(int)
    fig, axes = plt.subplots(1, num, figsize=(2.2 * num, 2.6))
    for ax, k in zip(np.atleast_1d(axes), picks, strict=True):
        ax.imshow(frames[k])
        label = f"t={times[k]:.1f}s" + (f"  sim={similarity[k]:.3f}" if similarity is not None else "")
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def similarity_curve(times: np.ndarray, similarity: np.ndarray, label: str = "", ax=None):
    """Similarity per frame of a rollout."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    ax.plot(times, similarity, label=label)
    ax.set(xlabel="time (s)", ylabel="goal similarity")
    if label:
        ax.legend(fontsize=8)
    return ax.figure
