"""Figures of the interaction scenes (paper §4.4): object trajectories and the views of the scenes' cameras."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from anyskill.sim.interaction import InteractionTrajectory
from anyskill.sim.scene import Door, SoccerBall

CONTACT_COLOUR = "tab:red"


def plot_object_trajectories(items: Sequence[tuple[str, InteractionTrajectory]],
                             door_references: Mapping[str, float] | None = None, title: str = ""):
    """One row per labelled trajectory, two panels per object kind.

    Ball: its path seen from above (x, y, m; the humanoid's root path in grey) and its speed over time. Door: the
    leaf's angle and angular speed over time (``door_references``: label -> a predicted resting angle, deg, drawn
    dashed). Frames in which a humanoid body touched the object are marked in red.
    """
    fig, axes = plt.subplots(len(items), 2, figsize=(10, 3.0 * len(items)), squeeze=False)
    for (label, tr), (left, right) in zip(items, axes, strict=True):
        obj = tr.scene.objects[0]
        qpos, qvel = tr.scene.split(tr.object_qpos, tr.object_qvel)[obj.name]
        touching = tr.contacts.any(-1)
        if isinstance(obj, SoccerBall):
            left.plot(tr.qpos[:, 0], tr.qpos[:, 1], color="0.6", label="humanoid root")
            left.plot(qpos[:, 0], qpos[:, 1], label="ball")
            left.scatter(qpos[touching, 0], qpos[touching, 1], color=CONTACT_COLOUR, s=12, zorder=3, label="contact")
            left.scatter(*qpos[0, :2], marker="o", facecolor="none", edgecolor="k", label="start")
            left.scatter(*qpos[-1, :2], marker="x", color="k", label="end")
            left.set(xlabel="x (m)", ylabel="y (m)", title=f"{label}: ball path (top view)")
            left.set_aspect("equal", adjustable="datalim")
            right.plot(tr.times, np.linalg.norm(qvel[:, :3], axis=-1))
            right.set(xlabel="time (s)", ylabel="ball speed (m/s)", title="ball speed")
        elif isinstance(obj, Door):
            left.plot(tr.times, np.degrees(qpos[:, 0]))
            if door_references and label in door_references:
                left.axhline(door_references[label], ls="--", color="k", lw=0.8, label="predicted rest ω0·I/c")
            left.set(xlabel="time (s)", ylabel="leaf angle (deg)", title=f"{label}: door angle")
            right.plot(tr.times, np.degrees(qvel[:, 0]))
            right.set(xlabel="time (s)", ylabel="angular speed (deg/s)", title="door angular speed")
        for ax in (left, right):
            if ax is right or isinstance(obj, Door):
                for t in tr.times[touching]:
                    ax.axvline(t, color=CONTACT_COLOUR, alpha=0.3, lw=1)
            ax.grid(alpha=0.3)
        if left.get_legend_handles_labels()[0]:
            left.legend(fontsize=7, framealpha=0.6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def scene_views(frames: Sequence[np.ndarray], labels: Sequence[str], title: str = ""):
    """A row of camera views (H, W, 3) uint8, one per scene, each titled with its (wrapped) label."""
    fig, axes = plt.subplots(1, len(frames), figsize=(3.6 * len(frames), 4.0), squeeze=False)
    for ax, frame, label in zip(axes[0], frames, labels, strict=True):
        ax.imshow(frame)
        ax.set_title(textwrap.fill(label, 48), fontsize=8)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.94) if title else None)  # keep the suptitle clear of the two-line titles
    return fig
