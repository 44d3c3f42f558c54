"""Figures of the method comparisons behind Tables 1–3: a filmstrip per method and the measured columns per method."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from anyskill.hlc.rollout import RolloutResult


def method_filmstrips(rollouts: dict[str, RolloutResult], num: int = 5, title: str = ""):
    """One row of ``num`` evenly spaced rendered frames per method (label -> rendered rollout), each frame labelled
    with its time and goal score."""
    fig, axes = plt.subplots(len(rollouts), num, figsize=(2.0 * num, 2.1 * len(rollouts)), squeeze=False)
    for row, (label, ro) in zip(axes, rollouts.items(), strict=True):
        if ro.frames is None:
            raise ValueError(f"rollout of {label!r} was not rendered")
        picks = np.linspace(0, len(ro.frames) - 1, num).round().astype(int)
        for ax, k in zip(row, picks, strict=True):
            ax.imshow(ro.frames[k])
            ax.set_title(f"t={ro.times[k]:.1f}s  {ro.similarity[k]:.3f}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(label if len(label) < 40 else label[:37] + "...", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def plot_measured(measured: pd.DataFrame, columns: dict[str, str], title: str = ""):
    """Bars of each measured column (key -> axis title) per method (``label``), averaged over prompts."""
    means = measured.groupby("label", sort=False)[list(columns)].mean(numeric_only=False).astype(float)
    fig, axes = plt.subplots(1, len(columns), figsize=(2.6 * len(columns), 3.2), squeeze=False)
    for ax, (col, name) in zip(axes[0], columns.items(), strict=True):
        ax.barh(np.arange(len(means)), means[col].to_numpy())
        ax.set_yticks(np.arange(len(means)))
        ax.set_yticklabels([lbl if len(lbl) < 30 else lbl[:27] + "..." for lbl in means.index] if ax is axes[0][0]
                           else [], fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.invert_yaxis()
        ax.grid(alpha=0.3, axis="x")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
