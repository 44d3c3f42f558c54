"""Learning curves of the low- and high-level controllers, from in-memory epoch stats or TensorBoard logs."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

LLC_PANELS = (
    ("discriminator loss (Eq. 1)", ["disc_loss", "disc_bce"]),
    ("discriminator accuracy", ["disc_demo_accuracy", "disc_agent_accuracy"]),
    ("rewards (Eq. 2; tracking)", ["style_reward", "track_reward"]),
    ("episode length (control steps)", ["episode_length"]),
    ("encoder regularisers", ["enc_align", "enc_uniform"]),
)


def stats_frame(epoch_stats: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Per-epoch dicts (or a table of them) -> DataFrame indexed by epoch."""
    df = pd.DataFrame(epoch_stats)
    df = df.set_index("epoch") if "epoch" in df else df
    df.index.name = "epoch"
    return df


def read_tensorboard(run_dir: str | Path, prefix: str = "calm/") -> pd.DataFrame:
    """Scalars under ``prefix`` from a run's TensorBoard events, indexed by env steps (rl-games' frame counter)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(Path(run_dir).rglob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"no TensorBoard events under {run_dir}")
    series: dict[str, dict[int, float]] = {}
    for f in files:
        acc = EventAccumulator(str(f), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if tag.startswith(prefix):
                series.setdefault(tag[len(prefix):], {}).update({e.step: e.value for e in acc.Scalars(tag)})
    df = pd.DataFrame(series).sort_index()
    df.index.name = "env steps"
    return df


def plot_curves(df: pd.DataFrame, panels=LLC_PANELS, title: str = "", smooth: int = 1):
    """One panel per group of columns present in ``df`` (epoch index); optional rolling-mean smoothing."""
    panels = [(t, [c for c in cols if c in df]) for t, cols in panels]
    panels = [(t, cols) for t, cols in panels if cols]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.0), squeeze=False)
    for ax, (t, cols) in zip(axes[0], panels, strict=True):
        for c in cols:
            ax.plot(df.index, df[c].rolling(smooth, min_periods=1).mean(), label=c)
        ax.set(title=t, xlabel=df.index.name or "epoch")
        if len(cols) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
