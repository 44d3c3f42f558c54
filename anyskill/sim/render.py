"""Offscreen rendering of humanoid states for the CLIP reward (paper §3.3, "Rendering").

The camera (:class:`~anyskill.sim.camera.CameraSpec`) sits at a fixed point of each env's frame — (3, 0, 1) m by
default, in front of the humanoid, which faces +x at spawn — and is re-aimed every frame at the pelvis (in an
interaction scene, :mod:`anyskill.sim.scene`: at the mean of the pelvis and the object). Rendering goes through
MuJoCo's OpenGL renderer on EGL (NVIDIA's EGL on GPU machines, Mesa's software EGL on CPU machines); set
``MUJOCO_GL=egl`` before ``mujoco`` is imported (the package does this on import if the variable is unset).

States from any backend are rendered by writing their ``qpos`` into one scratch ``MjData``, running kinematics
and drawing: ``render_qpos(qpos (N, nq)) -> (N, H, W, 3) uint8``. A scene's ``qpos`` is the humanoid's 35 coordinates
followed by the objects'; humanoid-only states (N, 35) are drawn with the objects at their default placement.
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

# Native libraries loaded after an EGL context exists can crash the process (measured here: importing torchvision,
# which loads triton's C module, segfaults once a MuJoCo EGL renderer was created). Load them first.
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402, F401

from anyskill.sim.camera import CameraSpec, look_at  # noqa: E402

EGL_PACKAGES = "libegl1 libegl-mesa0 libgl1-mesa-dri"


class RenderingUnavailable(RuntimeError):
    """Headless OpenGL could not be started; the message says which system packages to install."""


FAST_RENDER = {"offsamples": 0, "shadows": False, "reflections": False}
"""The low-cost settings (``StateRenderer(fast=True)``): no multisampling, shadows or floor reflections. On Mesa's
software EGL they render 4.5x faster (measured: 22 -> 98 frames/s on one core) and change ViT-B/32 features by a
cosine of ~1e-4 (``bench/bench_reward.py`` reports both); the state projection is calibrated on them."""


class StateRenderer:
    """Renders batches of states of one MjModel to RGB frames (N, H, W, 3) uint8. ``fast``: :data:`FAST_RENDER`
    (sets ``model.vis.quality.offsamples`` to 0 on the model it is given)."""

    def __init__(self, model: mujoco.MjModel, camera: CameraSpec | None = None, fast: bool = False):
        camera = camera or CameraSpec()
        self.model = model
        self.camera_spec = camera
        self.fast = fast
        if fast:
            model.vis.quality.offsamples = FAST_RENDER["offsamples"]
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
        self.target_bodies = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in camera.target_bodies]
        missing = [b for b, i in zip(camera.target_bodies, self.target_bodies, strict=True) if i < 0]
        if missing:
            raise ValueError(f"camera target bodies {missing} are not in the model")

    def render_qpos(self, qpos: np.ndarray | torch.Tensor, env_origins: np.ndarray | None = None) -> torch.Tensor:
        """qpos (N, nq) -> frames (N, H, W, 3) uint8. ``env_origins`` (N, 3) m shifts each env's camera. Fewer than
        nq columns (a humanoid-only state in a scene) leave the remaining coordinates at the model's default
        (``qpos0``: the objects' default placement)."""
        q = qpos.detach().cpu().numpy() if isinstance(qpos, torch.Tensor) else np.asarray(qpos)
        q = np.atleast_2d(q)
        nq = self.model.nq
        if q.shape[1] > nq:
            raise ValueError(f"render_qpos: states have {q.shape[1]} coordinates but the model has nq = {nq}; render "
                             "them with a StateRenderer of the model they were simulated in")
        if q.shape[1] < nq:
            q = np.concatenate([q, np.broadcast_to(self.model.qpos0[q.shape[1]:], (len(q), nq - q.shape[1]))], 1)
        h, w = self.camera_spec.height, self.camera_spec.width
        out = np.empty((len(q), h, w, 3), dtype=np.uint8)
        eye0 = np.asarray(self.camera_spec.position, dtype=np.float64)
        for i, qi in enumerate(q):
            self.data.qpos[:] = qi
            mujoco.mj_kinematics(self.model, self.data)
            eye = eye0 + (env_origins[i] if env_origins is not None else 0.0)
            look_at(self.camera, eye, self.data.xpos[self.target_bodies].mean(0))
            self.renderer.update_scene(self.data, camera=self.camera)
            if self.fast:
                flags = self.renderer.scene.flags
                flags[mujoco.mjtRndFlag.mjRND_SHADOW] = FAST_RENDER["shadows"]
                flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = FAST_RENDER["reflections"]
            out[i] = self.renderer.render()
        return torch.from_numpy(out)

    @property
    def settings(self) -> dict:
        """What decides the pixels besides the states (for cache keys): image size, field of view, render quality."""
        return {"width": self.camera_spec.width, "height": self.camera_spec.height, "fovy": self.camera_spec.fovy,
                "offsamples": int(self.model.vis.quality.offsamples), "fast": self.fast}

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
