"""Goals of the high-level policy behind one reward interface: ``goal.similarity(states) -> (N,)``.

The paper's reward (Eq. 3) scores every simulated frame by the cosine similarity between the CLIP feature of
its rendering and the CLIP feature of the text. Every goal here produces that per-frame score:

* :class:`TextGoal` — CLIP image features of the rendered frame (or the state-projection MLP's prediction from
  the body positions, paper §3.3) against the cached CLIP text feature of a prompt;
* :class:`ImageGoal` — the same, against the CLIP image feature of a goal image (a file, an array, or a frame
  rendered from a motion clip's pose);
* :class:`PoseGoal` — no CLIP at all: exp(-mean body-position error / sigma) to a reference pose. It is the
  offline end-to-end check of the hierarchy (a reward whose optimum is known and measurable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from anyskill.motion import rotations as rot
from anyskill.motion.clip import MotionClip

if TYPE_CHECKING:
    from anyskill.reward.clip_model import ClipModel
    from anyskill.reward.projection import StateProjection
    from anyskill.sim.render import StateRenderer

Tensor = torch.Tensor
RewardSource = Literal["render", "projection"]


@dataclass
class HumanoidStates:
    """What a goal may look at, for N envs (env frame, z up).

    body_pos (N, 15, 3) m; body_rot (N, 15, 4) wxyz; qpos (N, 7 + 28): root position, root rotation wxyz,
    hinge angles in the MJCF order (what :meth:`StateRenderer.render_qpos` draws).
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
    def from_backend(cls, backend) -> "HumanoidStates":
        """The current states of an :class:`anyskill.sim.backend.Backend`'s worlds (each world is one env frame)."""
        return cls(body_pos=backend.body_pos(), body_rot=backend.body_rot(), qpos=backend.qpos())


@runtime_checkable
class Goal(Protocol):
    """A target of the high-level policy: per-frame similarity in a bounded range, and a provenance line."""

    description: str
    spec: dict
    """JSON-able recipe to rebuild the goal (:func:`goal_from_spec`), stored in HLC checkpoints."""

    def similarity(self, states: HumanoidStates) -> Tensor:
        """(N,) similarity of each env's current frame to the goal (higher is better)."""


# ---------------------------------------------------------------------------------------------------- CLIP goals
class _ClipFeatureGoal:
    """Cosine similarity between a frame's CLIP image feature (rendered, or projected from the state) and a target."""

    def __init__(self, clip_model: ClipModel, renderer: StateRenderer | None, target: Tensor,
                 reward_source: RewardSource, projection: StateProjection | None,
                 render_interval: int = 1, render_envs: int | None = None):
        if render_interval < 1 or (render_envs is not None and render_envs < 1):
            raise ValueError(f"render_interval and render_envs must be >= 1, got {render_interval}, {render_envs}")
        if reward_source not in ("render", "projection"):
            raise ValueError(f"reward_source must be 'render' or 'projection', got {reward_source!r}")
        if reward_source == "render" and renderer is None:
            raise ValueError("reward_source='render' needs a StateRenderer; pass renderer=StateRenderer(mj_model)")
        if reward_source == "projection" and projection is None:
            raise ValueError(
                "reward_source='projection' needs a trained StateProjection; fit one with "
                "anyskill.hlc.projection_data.train_projection or use reward_source='render'"
            )
        self.clip_model = clip_model
        self.renderer = renderer
        self.reward_source = reward_source
        self.projection = projection.eval() if projection is not None else None
        self.target = F.normalize(target.float().flatten(), dim=0)  # (E,) unit
        self.render_interval = render_interval
        self.render_envs = render_envs
        self._calls = 0
        self._offset = 0
        self._last: Tensor | None = None

    def image_features(self, states: HumanoidStates) -> Tensor:
        """(N, E) unit features of the frames: CLIP of the renders, or the projection MLP's prediction."""
        if self.reward_source == "projection":
            with torch.no_grad():
                proj_device = next(self.projection.parameters()).device
                return F.normalize(self.projection(states.body_pos.to(proj_device).float()), dim=-1)
        frames = self.renderer.render_qpos(states.qpos)
        return self.clip_model.encode_images(frames)

    def similarity(self, states: HumanoidStates) -> Tensor:
        """(N,) cosine similarities. With ``render_interval`` k > 1 (render source) frames are rendered and encoded
        only every k-th call and the last values are held in between; with ``render_envs`` M only M envs (a window
        rotating over all envs) are rendered per call and the others keep their last values. Both trade reward
        freshness for speed; held values of an env that was reset in between are stale until it is rendered again."""
        n = states.body_pos.shape[0]
        sparse = self.reward_source == "render" and (self.render_interval > 1 or self.render_envs is not None)
        if not sparse or self._last is None or len(self._last) != n:
            feats = self.image_features(states)
            self._last = (feats @ self.target.to(feats.device)).to(states.body_pos.device)
            self._calls = 1
            return self._last.clone()
        self._calls += 1
        if (self._calls - 1) % self.render_interval:
            return self._last.clone()
        m = min(self.render_envs or n, n)
        ids = (self._offset + torch.arange(m)) % n
        self._offset = (self._offset + m) % n
        sub = HumanoidStates(body_pos=states.body_pos[ids], body_rot=states.body_rot[ids], qpos=states.qpos[ids])
        feats = self.image_features(sub)
        self._last[ids.to(self._last.device)] = (feats @ self.target.to(feats.device)).to(self._last.device)
        return self._last.clone()

    @property
    def clip_weights(self) -> str:
        return self.clip_model.spec.description


class TextGoal(_ClipFeatureGoal):
    """cos(CLIP image feature of the frame, CLIP text feature of ``prompt``) (paper Eq. 3, first term).

    ``reward_source="render"`` renders every frame and encodes it with CLIP; ``"projection"`` predicts the image
    feature from the 15 body positions with a trained :class:`StateProjection` (paper §3.3).
    """

    def __init__(self, clip_model: ClipModel, renderer: StateRenderer | None, prompt: str,
                 reward_source: RewardSource = "render", projection: StateProjection | None = None,
                 render_interval: int = 1, render_envs: int | None = None):
        if not prompt.strip():
            raise ValueError("TextGoal needs a non-empty prompt")
        super().__init__(clip_model, renderer, clip_model.encode_text(prompt)[0], reward_source, projection,
                         render_interval, render_envs)
        self.prompt = prompt
        self.description = f"text {prompt!r} | CLIP {self.clip_weights} | reward source {reward_source}"
        self.spec = {"kind": "text", "prompt": prompt, "reward_source": reward_source,
                     "clip_weights": clip_model.spec.weights}


class ImageGoal(_ClipFeatureGoal):
    """cos(CLIP image feature of the frame, CLIP image feature of a goal image).

    ``image``: a PNG/JPG path, or an (H, W, 3) uint8 array/tensor.
    """

    def __init__(self, clip_model: ClipModel, renderer: StateRenderer | None, image: str | Path | np.ndarray | Tensor,
                 reward_source: RewardSource = "render", projection: StateProjection | None = None,
                 name: str | None = None):
        frame = load_image(image)
        super().__init__(clip_model, renderer, clip_model.encode_images(frame[None])[0], reward_source, projection)
        self.image = frame
        label = name or (str(image) if isinstance(image, (str, Path)) else f"array {tuple(frame.shape)}")
        self.description = f"image {label} | CLIP {self.clip_weights} | reward source {reward_source}"
        self.spec = {"kind": "image", "image": str(Path(image).resolve()) if isinstance(image, (str, Path)) else None,
                     "reward_source": reward_source, "clip_weights": clip_model.spec.weights}

    @classmethod
    def from_clip_frame(cls, clip_model: ClipModel, renderer: StateRenderer, clip: MotionClip, time: float,
                        reward_source: RewardSource = "render",
                        projection: StateProjection | None = None) -> "ImageGoal":
        """Goal image = the render of ``clip``'s pose at ``time`` s (nearest frame), moved horizontally to the origin
        where the agent starts, seen by the same camera as the agent."""
        frame = renderer.render_qpos(clip_qpos(clip, time, centre=True)[None])[0]
        goal = cls(clip_model, renderer, frame, reward_source, projection, name=f"{clip.name}@{time:.2f}s")
        goal.spec.update({"clip": clip.name, "time": float(time)})
        return goal


def load_image(image: str | Path | np.ndarray | Tensor) -> Tensor:
    """A goal image as (H, W, 3) uint8: from a PNG/JPG file (alpha dropped, grey expanded) or an array."""
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"goal image {path} does not exist")
        import imageio.v2 as imageio

        arr = np.asarray(imageio.imread(path))
    else:
        arr = image.detach().cpu().numpy() if isinstance(image, Tensor) else np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"goal image must be (H, W, 3) RGB or (H, W, 4) RGBA, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if arr.max() <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return torch.from_numpy(np.ascontiguousarray(arr[..., :3]))


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


# ---------------------------------------------------------------------------------------------------- pose goal
def pose_descriptor(body_pos: Tensor, root_rot: Tensor) -> Tensor:
    """(N, B, 3) m: body positions relative to the root's ground projection, in the root's heading frame.

    Invariant to horizontal translation and to yaw; keeps heights (so a crouch or a fall changes it).
    """
    rel = body_pos.clone()
    rel[..., :2] = rel[..., :2] - body_pos[:, :1, :2]
    heading_inv = rot.heading_quat_inverse(root_rot)[:, None].expand(-1, body_pos.shape[1], -1)
    return rot.quat_rotate(heading_inv, rel)


class PoseGoal:
    """similarity = exp(-e / sigma), e = mean over the 15 bodies of the distance (m) between the frame's and the
    target's :func:`pose_descriptor`. In (0, 1], 1 exactly at the pose, smooth; sigma (m) sets the scale
    (0.25 m: standing vs. both arms raised ≈ 0.5, lying on the floor ≈ 0.05).

    The target is ``target_body_pos`` (15, 3) m with ``target_root_rot`` (4,) wxyz (default identity), or the
    frame of a :class:`MotionClip` nearest to ``time`` (:meth:`from_clip`).
    """

    def __init__(self, target_body_pos: Tensor | np.ndarray, target_root_rot: Tensor | np.ndarray | None = None,
                 sigma: float = 0.25, name: str = "pose"):
        pos = torch.as_tensor(np.asarray(target_body_pos), dtype=torch.float32)
        if pos.ndim != 2 or pos.shape[-1] != 3:
            raise ValueError(f"target_body_pos must be (B, 3) m, got shape {tuple(pos.shape)}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0 m, got {sigma}")
        quat = torch.tensor([1.0, 0.0, 0.0, 0.0]) if target_root_rot is None else torch.as_tensor(
            np.asarray(target_root_rot), dtype=torch.float32)
        self.target_body_pos = pos
        self.target = pose_descriptor(pos[None], quat[None])[0]  # (B, 3)
        self.sigma = float(sigma)
        self.name = name
        self.description = f"pose {name} | exp(-mean body error / {sigma:g} m) | no CLIP"
        self.spec = {"kind": "pose", "target_body_pos": pos.tolist(), "target_root_rot": quat.tolist(),
                     "sigma": self.sigma, "name": name}

    @classmethod
    def from_clip(cls, clip: MotionClip, time: float | None = None, sigma: float = 0.25) -> "PoseGoal":
        """The pose of ``clip`` at ``time`` s (default: the middle frame)."""
        time = clip.duration / 2 if time is None else float(time)
        f = frame_index(clip, time)
        body_pos, body_rot = clip.body_states()
        goal = cls(body_pos[f], body_rot[f, 0], sigma=sigma, name=f"{clip.name}@{time:.2f}s")
        goal.spec.update({"clip": clip.name, "time": time})
        return goal

    def error(self, states: HumanoidStates) -> Tensor:
        """(N,) m: mean body-position error of the pose descriptors."""
        desc = pose_descriptor(states.body_pos.float(), states.root_rot.float())
        return (desc - self.target.to(desc.device)).norm(dim=-1).mean(dim=-1)

    def similarity(self, states: HumanoidStates) -> Tensor:
        return torch.exp(-self.error(states) / self.sigma)


# ---------------------------------------------------------------------------------------------------- rebuilding
def find_clip(name: str, motion_lib=None) -> MotionClip:
    """A motion clip by file path, bundled file stem (``authored_squat``) or library clip name (``squat``)."""
    from anyskill.data import MOTIONS_DIR
    from anyskill.motion import load_motion

    path = Path(name)
    if path.suffix and path.is_file():
        return load_motion(path)
    bundled = MOTIONS_DIR / f"{name}.npz"
    if bundled.is_file():
        return load_motion(bundled)
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    if name in motion_lib.clip_names:
        return motion_lib.clips[motion_lib.clip_names.index(name)]
    stems = sorted(p.stem for p in MOTIONS_DIR.glob("*.npz"))
    raise ValueError(f"no motion clip {name!r}: give a motion file path, a bundled file stem {stems} or a library "
                     f"clip name {motion_lib.clip_names}")


def goal_from_spec(spec: dict, clip_model: ClipModel | None = None, renderer: StateRenderer | None = None,
                   projection: StateProjection | None = None, motion_lib=None) -> Goal:
    """Rebuild a goal from its ``spec`` (as stored in an HLC checkpoint); CLIP goals need ``clip_model`` and
    ``renderer`` (or ``projection`` for ``reward_source="projection"``)."""
    kind = spec.get("kind")
    if kind == "pose":
        if "clip" in spec:
            return PoseGoal.from_clip(find_clip(spec["clip"], motion_lib), spec.get("time"), sigma=spec["sigma"])
        return PoseGoal(spec["target_body_pos"], spec["target_root_rot"], sigma=spec["sigma"], name=spec["name"])
    if kind not in ("text", "image"):
        raise ValueError(f"unknown goal kind {kind!r} in spec {spec}; expected 'text', 'image' or 'pose'")
    if clip_model is None:
        raise ValueError(f"a {kind} goal needs a ClipModel (weights {spec.get('clip_weights')!r}); pass clip_model")
    source = spec.get("reward_source", "render")
    if kind == "text":
        return TextGoal(clip_model, renderer, spec["prompt"], source, projection)
    if "clip" in spec:
        return ImageGoal.from_clip_frame(clip_model, renderer, find_clip(spec["clip"], motion_lib), spec["time"],
                                         source, projection)
    if not spec.get("image"):
        raise ValueError("this image goal was built from an in-memory array and cannot be rebuilt; pass the goal")
    return ImageGoal(clip_model, renderer, spec["image"], source, projection)
