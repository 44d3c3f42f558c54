"""Figures and result files of the low-level controller's evaluations: per-clip imitation
(:func:`anyskill.llc.evaluate.evaluate_llc`) and held-out skills (:func:`anyskill.llc.skills.evaluate_skills`):
which clip each latent's rollout resembles, and how the skill metrics develop over training."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from anyskill.llc.skills import SkillEvaluation
    from anyskill.provenance import Provenance


def plot_llc_eval(df: pd.DataFrame):
    """Bar charts per clip (survival, local and global body error, style reward), one bar per controller."""
    import seaborn as sns

    panels = [("survival_s", "survival (s)"), ("body_err_local_m", "root-relative body error (m)"),
              ("body_err_global_m", "global body error (m)"), ("style_reward", "style reward (Eq. 2)")]
    fig, axes = plt.subplots(len(panels), 1, figsize=(max(8, 0.55 * df["clip"].nunique()), 3.0 * len(panels)),
                             sharex=True)
    for ax, (col, label) in zip(axes, panels, strict=True):
        sns.barplot(data=df, x="clip", y=col, hue="controller", ax=ax)
        ax.set(ylabel=label, xlabel="")
        if ax is not axes[0] and ax.get_legend() is not None:
            ax.get_legend().remove()
    axes[-1].tick_params(axis="x", rotation=60)
    for label in axes[-1].get_xticklabels():
        label.set_ha("right")
    fig.suptitle("Low-level controller: imitation of each clip from its own latent")
    fig.tight_layout()
    return fig


def write_llc_eval(df: pd.DataFrame, out_dir: str | Path, prov: Provenance) -> tuple[Path, Path]:
    """Write ``llc_eval.csv`` (with the provenance header) and ``llc_eval.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    csv = prov.write_csv(df, out_dir / "llc_eval.csv")
    fig = plot_llc_eval(df)
    png = prov.save_figure(fig, out_dir / "llc_eval.png")
    plt.close(fig)
    return csv, png


def plot_skill_identification(distances: pd.DataFrame, per_clip: pd.DataFrame, title: str = ""):
    """Left: pose distance (m) from each latent's 10-s rollout (rows) to every clip (columns); a box marks the
    nearest clip (the identification), a dot the own clip. Right: own-clip distance vs the nearest other clip, with
    falls marked. What to look for: boxes on the diagonal (each latent does its own skill)."""
    d = distances.to_numpy()
    names = list(distances.columns)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 6.2), gridspec_kw={"width_ratios": [1.25, 1]})
    im = ax.imshow(d, cmap="viridis_r", vmin=0.0, vmax=float(np.percentile(d, 95)))
    fig.colorbar(im, ax=ax, fraction=0.046, label="pose distance (m)")
    nearest = d.argmin(1)
    for i, j in enumerate(nearest):
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red" if i != j else "white", lw=1.8))
    ax.scatter(range(len(names)), range(len(names)), s=8, c="white")
    ax.set_xticks(range(len(names)), names, rotation=70, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="reference clip", ylabel="latent held (rollout from standing)")
    acc = float(per_clip["identified"].mean())
    ax.set_title(f"identified {int(per_clip['identified'].sum())}/{len(per_clip)} (top-1 {acc:.0%}, "
                 f"chance {1 / len(per_clip):.0%})", fontsize=9)
    y = np.arange(len(per_clip))
    bx.barh(y - 0.2, per_clip["own_distance_m"], height=0.4, label="own clip", color="tab:blue")
    bx.barh(y + 0.2, per_clip["nearest_other_m"], height=0.4, label="nearest other clip", color="tab:gray")
    fell = ~per_clip["survived"].to_numpy(bool)
    bx.scatter(np.full(fell.sum(), 0.005), y[fell], marker="x", c="red", label="fell", zorder=3)
    bx.set_yticks(y, per_clip["clip"], fontsize=7)
    bx.invert_yaxis()
    bx.set(xlabel="pose distance (m)")
    bx.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_skill_curves(curve: pd.DataFrame, goals: dict[str, float] | None = None, title: str = ""):
    """Skill metrics (columns survival_rate, top1_accuracy, mean_own_distance_m; index: training samples) over
    training, with the issue's goals as dashed lines when given."""
    panels = [("survival_rate", "latents standing 10 s (fraction)"), ("top1_accuracy", "skill identification top-1"),
              ("mean_own_distance_m", "mean own-clip pose distance (m)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 3.2))
    for ax, (col, label) in zip(axes, panels, strict=True):
        ax.plot(curve.index, curve[col], marker="o", ms=3)
        if goals and col in goals:
            ax.axhline(goals[col], ls="--", c="gray", lw=1, label="goal")
            ax.legend(fontsize=7)
        if col == "top1_accuracy" and "chance" in curve:
            ax.axhline(float(curve["chance"].iloc[0]), ls=":", c="red", lw=1, label="chance")
            ax.legend(fontsize=7)
        ax.set(title=label, xlabel="training samples")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_skill_eval(result: SkillEvaluation, out_dir: str | Path, prov: Provenance, stem: str = "llc_skills",
                     title: str = "", figures_dir: str | Path | None = None) -> tuple[Path, Path, Path]:
    """Write ``<stem>.csv`` (per clip), ``<stem>_distances.csv``, ``<stem>.json`` (summary, idle check) with the
    provenance into ``out_dir``, and ``<stem>.png`` (:func:`plot_skill_identification`) into ``figures_dir``
    (default: ``out_dir``)."""
    out_dir = Path(out_dir)
    csv = prov.write_csv(result.per_clip, out_dir / f"{stem}.csv")
    prov.write_csv(result.distances.reset_index(names="latent_of"), out_dir / f"{stem}_distances.csv")
    fig = plot_skill_identification(result.distances, result.per_clip, title=title)
    png = prov.save_figure(fig, Path(figures_dir or out_dir) / f"{stem}.png")
    plt.close(fig)
    # after the figure: in the same folder its provenance sidecar is <stem>.json too, which the summary (provenance
    # included) must replace, not the other way round
    js = prov.write_json({"summary": result.summary, "idle": result.idle}, out_dir / f"{stem}.json")
    return csv, js, png


def plot_route_curves(tracker_curve: pd.DataFrame, distill_curve: pd.DataFrame, title: str = ""):
    """The tracking route over samples: tracker training (reward, terminations), its deterministic evaluation on
    every clip (finished from the first frame / from standing, error), and the student (action error on its own
    states; held-skill top-1 and sliding error where evaluated). Curves are the rows of ``tracker_curve.csv`` and
    ``distill_curve.csv`` written by :mod:`anyskill.llc.tracking.route`."""
    tc, dc = tracker_curve, distill_curve
    fig, ax = plt.subplots(1, 3, figsize=(15, 3.8))
    m = tc["samples"] / 1e6
    ax[0].plot(m, tc["reward"], lw=0.8, label="reward per step")
    ax[0].plot(m, tc["terminations_per_step"] * 10, lw=0.8, label="early terminations per step x 10")
    ax[0].set(xlabel="tracker samples (M)", title="tracker: PPO training")
    ev = tc.dropna(subset=["eval_finished"]) if "eval_finished" in tc else tc.head(0)
    if len(ev):
        e = ev["samples"] / 1e6
        ax[1].plot(e, ev["eval_finished"], "o-", label="finished, from the first frame")
        ax[1].plot(e, ev["eval_stand_finished"], "s-", label="finished, from standing")
        ax[1].plot(e, ev["eval_local_error_m"] * 10, "^-", label="root-relative error (m) x 10")
        ax[1].set_ylim(0, 1.05)
    else:
        ax[1].text(0.5, 0.5, "no periodic evaluation in this run\n(see the final evaluation)", ha="center",
                   va="center", transform=ax[1].transAxes, color="0.4")
    ax[1].set(xlabel="tracker samples (M)", title="tracker: every clip, deterministic")
    d = dc["samples"] / 1e6
    ax[2].plot(d, dc["rollout_action_mse"], lw=0.8, label="action MSE to the teacher, own states")
    evd = dc.dropna(subset=["eval_top1"]) if "eval_top1" in dc else dc.head(0)
    if len(evd):
        e = evd["samples"] / 1e6
        ax[2].plot(e, evd["eval_top1"], "o-", label="held latents: skills identified")
        ax[2].plot(e, evd["eval_sliding_error_m"], "s-", label="sliding latents: error (m)")
    ax[2].set(xlabel="distillation samples (M)", title="student: DAgger")
    for a in ax:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
        a.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latent_finetune(curve: pd.DataFrame, title: str = "", window: int = 10):
    """The RL fine-tune (``latent_finetune_curve.csv`` of ``anyskill finetune-llc``) over samples: falls per env-step
    of each latent regime under the exploration noise (rolling mean over ``window`` iterations; fewer is better), and
    the KL to the distilled policy with the learning rate (how far the fine-tune moved π_L)."""
    fig, ax = plt.subplots(1, 2, figsize=(12, 3.8))
    m = curve["samples"] / 1e6
    for col in [c for c in curve.columns if c.startswith("falls_")]:
        name = "all regimes" if col == "falls_per_step" else col.removeprefix("falls_").replace("_", " ")
        ax[0].plot(m, curve[col].rolling(window, min_periods=1).mean(), lw=2.0 if col == "falls_per_step" else 1.0,
                   label=name)
    ax[0].set(xlabel="fine-tune samples (M)", ylabel="falls per env-step", title="falls under exploration noise")
    if "actor_learning" in curve:
        warm = curve.loc[~curve["actor_learning"].astype(bool), "samples"]
        if len(warm):
            ax[0].axvspan(0, warm.max() / 1e6, color="0.9", label="critic warm-up")
    ax[1].plot(m, curve["anchor_kl"], lw=0.8, label="KL to the distilled policy")
    ax[1].set(xlabel="fine-tune samples (M)", title="distance from the distilled π_L")
    lr = ax[1].twinx()
    lr.plot(m, curve["lr"], lw=0.8, color="C3", label="actor learning rate")
    lr.set_ylabel("learning rate")
    for a in ax:
        a.legend(fontsize=8, loc="upper right")
        a.grid(alpha=0.3)
    lr.legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_sliding(df: pd.DataFrame, title: str = ""):
    """Per clip: root-relative body error of the sliding-latent replay (:func:`anyskill.llc.latent_checks.
    evaluate_sliding`), bars hatched where the humanoid fell, with the fall time written on them."""
    fig, ax = plt.subplots(figsize=(max(8, 0.5 * len(df)), 3.6))
    colors = ["tab:green" if f else "tab:red" for f in df["finished"]]
    ax.bar(df["clip"], df["local_error_m"], color=colors)
    for i, (fin, t) in enumerate(zip(df["finished"], df["fall_time_s"], strict=True)):
        if not fin:
            ax.text(i, 0.005, f"fell {t:.1f} s", rotation=90, ha="center", va="bottom", fontsize=7, color="white")
    ax.set(ylabel="root-relative body error (m)", title=title or "sliding latents from each clip's first frame "
           "(green: finished, red: fell)")
    ax.tick_params(axis="x", rotation=60)
    plt.setp(ax.get_xticklabels(), ha="right")
    fig.tight_layout()
    return fig


def plot_anchored_rollouts(rollouts: dict, library_spread_m: float | None = None, title: str = ""):
    """One column per latent action (``rollouts``: mode -> :class:`LatentRollout` of
    :func:`anyskill.llc.latent_checks.untrained_hlc_rollouts`), one line per env: the root (pelvis) height over time
    (top) and how far the pose has moved from the first one (bottom: mean distance of the 15 root-relative body
    positions, heading frame, m); a line turns grey after its env's fall (×, the env's fall rule). Each column's
    title gives the stay-up fraction and the pose spread (m)."""
    modes = list(rollouts)
    fig, axes = plt.subplots(2, len(modes), figsize=(5.2 * len(modes), 5.6), sharey="row", sharex=True,
                             squeeze=False)
    names = {"free": "free action: z = normalize(a)", "anchored": "anchored: z = normalize(μ_p(s) + σ a)",
             "anchored_previous": "anchored on the previous z"}
    for col, mode in enumerate(modes):
        r = rollouts[mode]
        h = r.root_height.numpy()[1:]
        moved = np.linalg.norm(r.poses.numpy() - r.poses.numpy()[:1], axis=-1).mean(-1)  # (T, N)
        t = np.arange(1, len(h) + 1) * r.dt
        fallen_at = np.where(r.fell.numpy(), (~r.alive.numpy()).argmax(0), len(h) - 1)
        for ax, y in ((axes[0][col], h), (axes[1][col], moved)):
            for i in range(y.shape[1]):
                k = int(fallen_at[i])
                ax.plot(t[:k + 1], y[:k + 1, i], lw=1.2, color=plt.cm.tab10(i % 10))
                if k < len(y) - 1:
                    ax.plot(t[k:], y[k:, i], lw=0.8, color="0.7")
                    ax.plot(t[k], y[k, i], "x", color="k", ms=4)
            ax.grid(alpha=0.3)
        spread = r.spread()["pose_spread_m"]
        axes[0][col].set_title(f"{names.get(mode, mode)}\nstay up {r.survival:.0%}, pose spread {spread:.3f} m",
                               fontsize=9)
        axes[1][col].set_xlabel("time (s)")
    axes[0][0].set_ylabel("root (pelvis) height (m)")
    axes[1][0].set_ylabel("pose moved from the start (m)")
    sub = f" (the clips' own pose spread: {library_spread_m:.3f} m)" if library_spread_m is not None else ""
    fig.suptitle((title + "\n" if title else "") + "latents of an untrained high-level policy, from standing" + sub,
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_tracker_comparison(runs: list[dict], title: str = ""):
    """Trackers compared over real samples (``bench/bench_model_based.py``'s ``runs``: per clip and method, the
    evaluations from the first frame and from standing): root-relative body error before a fall; dots where the clip
    was finished."""
    clips = list(dict.fromkeys(r["clip"] for r in runs))
    fig, axes = plt.subplots(1, len(clips), figsize=(5.2 * len(clips), 3.8), squeeze=False)
    colors = {"ppo": "tab:blue", "model_based": "tab:red"}
    for ax, clip in zip(axes[0], clips, strict=True):
        for r in (r for r in runs if r["clip"] == clip):
            ev = r["evaluations"]
            x = [e["samples"] / 1e6 for e in ev]
            for start, style in (("first", "-"), ("standing", "--")):
                y = [e[f"error_{start}_m"] for e in ev]
                label = f"{r['method']}, from the {'first frame' if start == 'first' else 'standing pose'}"
                ax.plot(x, y, style, color=colors.get(r["method"], "gray"), label=label)
                done = [(xi, yi) for xi, yi, e in zip(x, y, ev, strict=True) if e[f"finished_{start}"] == 1.0]
                if done:
                    ax.scatter(*zip(*done, strict=True), color=colors.get(r["method"], "gray"), s=18, zorder=3)
        ax.set(title=f"{clip} (dots: clip finished)", xlabel="real samples (millions)",
               ylabel="body error before a fall (m)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig

