"""Figures of text enhancement (paper §4.3, Fig. 6) and of the general (multi-prompt) policy."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from anyskill.viz.training import stats_frame

if TYPE_CHECKING:
    from anyskill.hlc.enhancement import EnhancementComparison

POLICY_COLOURS = {"original": "tab:blue", "enhanced": "tab:orange"}


def _wrap(text: str, width: int = 34) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def plot_enhancement_curves(comparisons: Sequence[EnhancementComparison], note: str = ""):
    """One panel per prompt: per-frame CLIP similarity of the rollout of the policy trained on the original text
    (blue) and on the enhanced text (orange), scored against the original instruction (solid) and the enhanced
    text (dashed). ``note`` is added to the title (e.g. a random-weights warning)."""
    n = len(comparisons)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False, sharey=True)
    for ax, c in zip(axes[0], comparisons, strict=True):
        times = c.original.rollout.times
        for (policy, text), curve in c.curves().items():
            t = getattr(c, policy).rollout.times
            ax.plot(t, curve, color=POLICY_COLOURS[policy], linestyle="-" if text == "original" else "--",
                    label=f"trained on {policy}, scored vs {text}")
        ax.set_xlim(times[0], max(times[-1], c.enhanced.rollout.times[-1]))
        ax.set_title(f"{c.enhancement.original!r}\n→ {_wrap(c.enhancement.text)}", fontsize=8)
        ax.set_xlabel("time (s)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("CLIP similarity of the rendered frame")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle("Policies trained on the original vs the enhanced text" + (f" — {note}" if note else ""),
                 fontsize=10, color="crimson" if note else "black")
    fig.tight_layout()
    return fig


def enhancement_filmstrips(comparisons: Sequence[EnhancementComparison], num: int = 5, note: str = ""):
    """Two rows per prompt (policy trained on the original text, then on the enhanced text), ``num`` rendered
    frames each, evenly spaced in time and labelled with the frame's similarity to the original instruction."""
    rows = [(c, policy) for c in comparisons for policy in ("original", "enhanced")]
    fig, axes = plt.subplots(len(rows), num, figsize=(1.9 * num, 2.0 * len(rows)), squeeze=False)
    for r, (c, policy) in enumerate(rows):
        trained = getattr(c, policy)
        frames, times = trained.rollout.frames, trained.rollout.times
        score = c.curves()[(policy, "original")]
        picks = np.linspace(0, len(frames) - 1, num).round().astype(int)
        for ax, k in zip(axes[r], picks, strict=True):
            ax.imshow(frames[k])
            ax.set_title(f"t={times[k]:.1f}s sim={score[k]:.3f}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(_wrap(f"{policy}: {trained.text}", 24), fontsize=7, color=POLICY_COLOURS[policy])
    fig.suptitle("Rollouts: policy trained on the original text (blue label) vs the enhanced text (orange); similarity "
                 "to the original instruction" + (f"\n{note}" if note else ""), fontsize=9,
                 color="crimson" if note else "black")
    fig.tight_layout()
    return fig


def plot_general_policy(epoch_stats: list[dict] | pd.DataFrame, per_prompt: dict[str, pd.DataFrame], note: str = ""):
    """Left: the general policy's mean similarity per training epoch (all prompts). Right: mean similarity per
    prompt for each policy of ``per_prompt`` (name -> :func:`~anyskill.hlc.general.evaluate_prompts` table, e.g.
    "untrained" and "trained"), with the spread over envs as error bars."""
    stats = stats_frame(epoch_stats)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 1.6]})
    ax0.plot(stats.index, stats["similarity"], marker="o")
    ax0.set(xlabel="epoch", ylabel="mean similarity (all prompts)", title="training")
    ax0.grid(alpha=0.3)
    height = 0.8 / max(len(per_prompt), 1)
    labels: list[str] = []
    for i, (name, table) in enumerate(per_prompt.items()):
        y = np.arange(len(table))
        ax1.barh(y + i * height, table["mean_similarity"], height, xerr=table["std_similarity"], label=name)
        labels = [_wrap(p, 40) for p in table["prompt"]]
    ax1.set_yticks(np.arange(len(labels)) + height * (len(per_prompt) - 1) / 2, labels, fontsize=7)
    ax1.invert_yaxis()
    ax1.set(xlabel="mean similarity to the prompt", title="per prompt (policy conditioned on it)")
    ax1.legend(fontsize=8)
    ax1.grid(alpha=0.3, axis="x")
    fig.suptitle("General policy" + (f" — {note}" if note else ""), fontsize=10, color="crimson" if note else "black")
    fig.tight_layout()
    return fig
