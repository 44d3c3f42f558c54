"""Plots of a motion dataset: durations by clip and category, sampling weights, ground contact quality."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def dataset_overview(df: pd.DataFrame):
    """Three panels from :func:`anyskill.motion.report.dataset_report`: durations, time per category, weights."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [2.2, 1, 1]})
    order = df.sort_values("duration_s", ascending=False)
    sns.barplot(data=order, y="name", x="duration_s", hue="category", dodge=False, ax=axes[0])
    axes[0].set(xlabel="duration (s)", ylabel="", title="clips")
    per_cat = df.groupby("category").agg(seconds=("duration_s", "sum"), clips=("name", "count")).reset_index()
    sns.barplot(data=per_cat, x="category", y="seconds", hue="category", ax=axes[1], legend=False)
    for i, row in per_cat.iterrows():
        axes[1].text(i, row.seconds, f"{row.clips} clips", ha="center", va="bottom", fontsize=8)
    axes[1].set(ylabel="total duration (s)", title="time per primary category")
    per_w = df.groupby("category")["weight"].sum().reset_index()
    sns.barplot(data=per_w, x="category", y="weight", hue="category", ax=axes[2], legend=False)
    axes[2].set(ylabel="sampling probability", title="sampling mass per category")
    fig.tight_layout()
    return fig


def ground_contact_plot(df: pd.DataFrame, tolerance: float = 0.03):
    """Per clip: stance sole height (mean and 5-95 % band), with the +-tolerance band shaded."""
    fig, ax = plt.subplots(figsize=(8, 0.32 * len(df) + 1.2))
    d = df.reset_index(drop=True)
    ax.axvspan(-tolerance * 100, tolerance * 100, color="0.9", label=f"±{tolerance * 100:.0f} cm")
    ax.hlines(d.index, d.stance_sole_p5_m * 100, d.stance_sole_p95_m * 100, color="tab:blue", lw=3,
              label="5–95 % of stance frames")
    ax.plot(d.stance_sole_mean_m * 100, d.index, "o", color="k", ms=4, label="mean")
    ax.set_yticks(d.index, d.name)
    ax.set_xlabel("sole height above the ground while the foot is in stance (cm)")
    ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()
    fig.tight_layout()
    return fig
