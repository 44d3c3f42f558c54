"""Matplotlib skeleton plots and animations (no OpenGL needed): poses, filmstrips, GIFs, retargeting views."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation

from anyskill.motion.clip import MotionClip

OURS = "#2a7ab0"
SOURCE = "#d95f02"


def draw_tree(ax, pos: np.ndarray, parents: Sequence[int] | np.ndarray, color: str = OURS, lw: float = 2.5,
              joints: bool = True, label: str | None = None):
    """Draw a kinematic tree on a 3-D axis. pos (J, 3) m, z up; parents (J,) with -1 for the root."""
    lines = []
    for j, p in enumerate(parents):
        if p >= 0:
            (ln,) = ax.plot(*zip(pos[p], pos[j], strict=True), color=color, lw=lw, solid_capstyle="round")
            lines.append(ln)
    if joints:
        ax.scatter(*pos.T, color=color, s=8, depthshade=False)
    if label:
        lines[0].set_label(label)
    return lines


def setup_axis(ax, centre: np.ndarray, half: float = 1.0, floor: bool = True, elev: float = 12, azim: float = -60):
    """Equal-aspect 3-D axis around ``centre`` (3,) m with a floor grid."""
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(0, 2 * half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elev, azim=azim)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])
    if floor:
        g = np.linspace(-half, half, 5)
        for v in g:
            ax.plot([centre[0] + v] * 2, [centre[1] - half, centre[1] + half], [0, 0], color="0.85", lw=0.6)
            ax.plot([centre[0] - half, centre[0] + half], [centre[1] + v] * 2, [0, 0], color="0.85", lw=0.6)


def pose_filmstrip(clip: MotionClip, num: int = 6, fig=None, color: str = OURS, title: bool = True):
    """A row of ``num`` poses evenly spaced over the clip; returns the figure."""
    pos = clip.body_pos()
    frames = np.linspace(0, clip.num_frames - 1, num).round().astype(int)
    fig = fig or plt.figure(figsize=(2.2 * num, 2.6))
    for i, f in enumerate(frames):
        ax = fig.add_subplot(1, num, i + 1, projection="3d")
        setup_axis(ax, np.array([pos[f, 0, 0], pos[f, 0, 1], 0.0]), half=0.9)
        draw_tree(ax, pos[f], clip.model.parents, color=color)
        ax.set_title(f"t = {f / clip.fps:.2f} s", fontsize=8)
    if title:
        fig.suptitle(f"{clip.name}: {clip.meta.get('description', '')}", fontsize=10)
    return fig


def save_animation(clip: MotionClip, path: str | Path, fps: int = 15, max_seconds: float = 4.0,
                   follow: bool = True) -> Path:
    """Write an animated GIF of the clip's skeleton (``fps`` frames/s, at most ``max_seconds``)."""
    pos = clip.body_pos()
    step = max(1, int(round(clip.fps / fps)))
    frames = np.arange(0, min(clip.num_frames, int(max_seconds * clip.fps) + 1), step)
    fig = plt.figure(figsize=(3.2, 3.2))
    ax = fig.add_subplot(111, projection="3d")

    def update(k: int):
        ax.cla()
        f = frames[k]
        centre = np.array([pos[f, 0, 0], pos[f, 0, 1], 0.0]) if follow else np.array([0.0, 0.0, 0.0])
        setup_axis(ax, centre, half=1.0)
        draw_tree(ax, pos[f], clip.model.parents)
        ax.set_title(f"{clip.name}  t = {f / clip.fps:.2f} s", fontsize=8)
        return []

    anim = animation.FuncAnimation(fig, update, frames=len(frames), blit=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    anim.save(path, writer=animation.PillowWriter(fps=fps))
    plt.close(fig)
    return path


def retarget_figure(source_pos: np.ndarray, source_parents: Sequence[int], clip: MotionClip, frames: Sequence[int],
                    source_frames: Sequence[int], title: str = ""):
    """Source skeleton (already in metres, z up) beside the retargeted humanoid at matching frames."""
    pos = clip.body_pos()
    fig = plt.figure(figsize=(2.6 * len(frames), 5.2))
    for i, (f, sf) in enumerate(zip(frames, source_frames, strict=True)):
        for row, (p, par, color, name) in enumerate(
            [(source_pos[sf], source_parents, SOURCE, "source BVH"), (pos[f], clip.model.parents, OURS, "our humanoid")]
        ):
            ax = fig.add_subplot(2, len(frames), row * len(frames) + i + 1, projection="3d")
            setup_axis(ax, np.array([pos[f, 0, 0], pos[f, 0, 1], 0.0]), half=0.9)
            draw_tree(ax, p, np.asarray(par), color=color, lw=2.0 if row == 0 else 2.5)
            if i == 0:
                ax.text2D(0.0, 0.95, name, transform=ax.transAxes, color=color, fontsize=9)
            if row == 0:
                ax.set_title(f"t = {f / clip.fps:.2f} s", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
