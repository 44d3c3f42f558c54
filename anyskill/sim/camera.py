"""The agent camera: where it sits and what it looks at (paper §3.3 "Rendering", §4.4; facts §4).

A :class:`CameraSpec` is fixed in each env's frame and re-aimed every frame at the mean position of its target
bodies: the pelvis alone for the plain humanoid (3 m in front of it by default), the pelvis and the object in an
interaction scene (:mod:`anyskill.sim.scene`), so that both stay in view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class CameraSpec:
    """A camera fixed in the env frame that looks at the mean origin of ``target_bodies``. Positions in m."""

    position: tuple[float, float, float] = (3.0, 0.0, 1.0)
    target_bodies: tuple[str, ...] = ("pelvis",)
    fovy: float = 45.0  # deg, vertical field of view
    width: int = 224
    height: int = 224

    def __post_init__(self) -> None:
        if not self.target_bodies:
            raise ValueError("CameraSpec needs at least one target body to look at")


def look_at(camera: mujoco.MjvCamera, eye: np.ndarray, target: np.ndarray) -> None:
    """Point a free MuJoCo camera from ``eye`` (3,) at ``target`` (3,), both m, world frame."""
    d = target - eye
    dist = float(np.linalg.norm(d))
    if dist < 1e-6:
        raise ValueError("camera position and target coincide")
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = target
    camera.distance = dist
    camera.azimuth = math.degrees(math.atan2(d[1], d[0]))
    camera.elevation = math.degrees(math.asin(max(-1.0, min(1.0, d[2] / dist))))
