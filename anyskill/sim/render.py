"""Offscreen rendering of humanoid states for the CLIP reward (paper §3.3, "Rendering").

The camera sits at a fixed point of each env's frame — (3, 0, 1) m by default, in front of the humanoid, which
faces +x at spawn — and is re-aimed every frame at the pelvis. Rendering goes through MuJoCo's OpenGL renderer
on EGL (NVIDIA's EGL on GPU machines, Mesa's software EGL on CPU machines); set ``MUJOCO_GL=egl`` before
``mujoco`` is imported (the package does this on import if the variable is unset).

States from any backend are rendered by writing their ``qpos`` into one scratch ``MjData``, running kinematics
and drawing: ``render_qpos(qpos (N, nq)) -> (N, H, W, 3) uint8``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

# Native libraries loaded after an EGL context exists can crash the process (measured here: importing torchvision,
# which loads triton's C module, segfaults once a MuJoCo EGL renderer was created). Load them first.
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402, F401

EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"


class RenderingUnavailable(RuntimeError):
    """Headless OpenGL could not be started; the message says which system packages to install."""


@dataclass(frozen=True)
class CameraSpec:
    """A camera fixed in the env frame that looks at a body. Positions in m."""

    position: tuple[float, float, float] = (3.0, 0.0, 1.0)
    target_body: str = "pelvis"
    fovy: float = 45.0  # deg, vertical field of view
    width: int = 224
    height: int = 224


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


class StateRenderer:
    """Renders batches of states of one MjModel to RGB frames (N, H, W, 3) uint8."""

    def __init__(self, model: mujoco.MjModel, camera: CameraSpec = CameraSpec()):
        self.model = model
        self.camera_spec = camera
        self.data = mujoco.MjData(model)
        model.vis.global_.fovy = camera.fovy
        model.vis.global_.offwidth = max(model.vis.global_.offwidth, camera.width)
        model.vis.global_.offheight = max(model.vis.global_.offheight, camera.height)
        try:
            self.renderer = mujoco.Renderer(model, height=camera.height, width=camera.width)
        except Exception as e:  # mujoco raises plain Exceptions / FatalError from the GL back-end
            raise RenderingUnavailable(
                f"could not start headless OpenGL with MUJOCO_GL={os.environ.get('MUJOCO_GL')} ({type(e).__name__}: "
                f"{e}). "
                f"Install an EGL provider: Debian/Ubuntu `apt-get install {EGL_PACKAGES}`, conda `libegl mesalib`; "
                "GPU machines use the NVIDIA driver's EGL."
            ) from e
        self.camera = mujoco.MjvCamera()
        self.target_body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, camera.target_body)
        if self.target_body < 0:
            raise ValueError(f"camera target body {camera.target_body!r} is not in the model")

    def render_qpos(self, qpos: np.ndarray | torch.Tensor, env_origins: np.ndarray | None = None) -> torch.Tensor:
        """qpos (N, nq) -> frames (N, H, W, 3) uint8. ``env_origins`` (N, 3) m shifts each env's camera."""
        q = qpos.detach().cpu().numpy() if isinstance(qpos, torch.Tensor) else np.asarray(qpos)
        q = np.atleast_2d(q)
        h, w = self.camera_spec.height, self.camera_spec.width
        out = np.empty((len(q), h, w, 3), dtype=np.uint8)
        eye0 = np.asarray(self.camera_spec.position, dtype=np.float64)
        for i, qi in enumerate(q):
            self.data.qpos[:] = qi
            mujoco.mj_kinematics(self.model, self.data)
            eye = eye0 + (env_origins[i] if env_origins is not None else 0.0)
            look_at(self.camera, eye, self.data.xpos[self.target_body].copy())
            self.renderer.update_scene(self.data, camera=self.camera)
            out[i] = self.renderer.render()
        return torch.from_numpy(out)

    def close(self) -> None:
        self.renderer.close()


def write_video(frames: np.ndarray | torch.Tensor, path: str | Path, fps: float = 30.0) -> Path:
    """Write frames (T, H, W, 3) uint8 as MP4 (needs imageio-ffmpeg) or GIF, chosen by the suffix."""
    import imageio.v2 as imageio

    arr = frames.cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list(arr), duration=1.0 / fps, loop=0)
    else:
        imageio.mimsave(path, list(arr), fps=fps, macro_block_size=1)
    return path
