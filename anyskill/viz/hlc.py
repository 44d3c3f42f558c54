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


def plot_early_termination_study(df: pd.DataFrame, title: str = "") -> plt.Figure:
    """``anyskill et-study``'s rows (``results/early_termination_pose_goals.csv``): one row of panels per training size
    (epochs x envs); per goal clip a bar per early termination (mean trained pose error, m), its seeds as dots, and
    the untrained policies' mean as a dashed tick. Lower is closer to the goal pose."""
    sizes = sorted({(int(e), int(n)) for e, n in zip(df["epochs"], df["envs"], strict=True)}, reverse=True)
    from anyskill.config.reward import EARLY_TERMINATIONS

    variants = [v for v in EARLY_TERMINATIONS if v in set(df["early_termination"])]
    fig, axes = plt.subplots(len(sizes), 1, figsize=(1.5 + 1.8 * max(len(set(df["goal_clip"])), 1), 3.0 * len(sizes)),
                             squeeze=False)
    width = 0.8 / max(len(variants), 1)
    for ax, (epochs, envs) in zip(axes[:, 0], sizes, strict=True):
        d = df[(df["epochs"] == epochs) & (df["envs"] == envs)]
        clips = sorted(set(d["goal_clip"]))
        for k, variant in enumerate(variants):
            label: str | None = variant
            for i, clip in enumerate(clips):
                g = d[(d["goal_clip"] == clip) & (d["early_termination"] == variant)]
                if g.empty:
                    continue
                x = i - 0.4 + width * (k + 0.5)
                ax.bar(x, g["pose_error_trained_m"].mean(), width * 0.9, color=f"C{k}", label=label)
                ax.plot([x] * len(g), g["pose_error_trained_m"], "k.", ms=4)
                label = None
        for i, clip in enumerate(clips):
            ax.hlines(d[d["goal_clip"] == clip]["pose_error_untrained_m"].mean(), i - 0.45, i + 0.45, colors="0.3",
                      linestyles="--", lw=1)
        seeds = ",".join(str(int(s)) for s in sorted(set(d["seed"])))
        ax.set_xticks(range(len(clips)), [c.removeprefix("authored_").replace("_", " ") for c in clips], fontsize=8)
        ax.set(ylabel="pose error, trained (m)", title=f"{epochs} epochs x {envs} envs (seeds {seeds})")
        ax.legend(fontsize=8, title="early termination", title_fontsize=8)
    fig.suptitle(title or "pose goals: early termination (dashed: untrained; dots: seeds)", fontsize=10)
    fig.tight_layout()
    return fig
