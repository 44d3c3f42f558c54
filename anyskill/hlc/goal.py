"""The interface of the high-level policy's goals: what a goal sees (:class:`HumanoidStates`) and what it answers
(:class:`Goal`, ``goal.similarity(states) -> (N,)``), with helpers to read a motion clip's frame.

The goals: :class:`~anyskill.hlc.clip_goals.TextGoal` and :class:`~anyskill.hlc.clip_goals.ImageGoal` (CLIP, the
paper's Eq. 3) and :class:`~anyskill.hlc.pose_goal.PoseGoal` (no CLIP: the offline end-to-end check);
:func:`~anyskill.hlc.goal_spec.goal_from_spec` rebuilds any of them from a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from anyskill.motion.clip import MotionClip

Tensor = torch.Tensor


@dataclass
class HumanoidStates:
    """What a goal may look at, for N envs (env frame, z up).

    body_pos (N, 15, 3) m; body_rot (N, 15, 4) wxyz; qpos (N, 7 + 28 + K): root position, root rotation wxyz,
    hinge angles in the MJCF order, then in an interaction scene the K coordinates of its objects (what
    :meth:`StateRenderer.render_qpos` draws; :mod:`anyskill.sim.scene`).
    """

    body_pos: Tensor
    body_rot: Tensor
    qpos: Tensor

    @property
    def root_pos(self) -> Tensor:
        """(N, 3) m."""
        return self.body_pos[:, 0]

    @property
    def root_rot(self) -> Tensor:
        """(N, 4) wxyz."""
        return self.body_rot[:, 0]

    @classmethod
    def from_backend(cls, backend) -> HumanoidStates:
        """The current states of an :class:`anyskill.sim.backend.Backend`'s worlds (each world is one env frame)."""
        objects = backend.object_qpos()
        qpos = torch.cat([backend.qpos(), objects], -1) if objects.shape[-1] else backend.qpos()
        return cls(body_pos=backend.body_pos(), body_rot=backend.body_rot(), qpos=qpos)


@runtime_checkable
class Goal(Protocol):
    """A target of the high-level policy: per-frame similarity in a bounded range, and a provenance line."""

    description: str
    spec: dict
    """JSON-able recipe to rebuild the goal (:func:`~anyskill.hlc.goal_spec.goal_from_spec`), stored in HLC
    checkpoints."""

    def similarity(self, states: HumanoidStates) -> Tensor:
        """(N,) similarity of each env's current frame to the goal (higher is better)."""


def frame_index(clip: MotionClip, time: float) -> int:
    """Index of ``clip``'s frame nearest to ``time`` s; raises if the time is outside the clip."""
    if not 0.0 <= time <= clip.duration + 1e-9:
        raise ValueError(f"time {time} s is outside clip {clip.name!r} (duration {clip.duration:.3f} s)")
    return min(int(round(time * clip.fps)), clip.num_frames - 1)


def clip_qpos(clip: MotionClip, time: float, centre: bool = False) -> np.ndarray:
    """(7 + D,) qpos of ``clip``'s frame nearest to ``time`` s; ``centre`` moves the root to x = y = 0."""
    f = frame_index(clip, time)
    q = np.concatenate([clip.root_pos[f], clip.root_rot[f], clip.dof_pos[f]])
    if centre:
        q[:2] = 0.0
    return q
