"""CLIP goals of the high-level policy (paper Eq. 3, first term): the cosine between a frame's CLIP image feature and
a target CLIP feature (:class:`~anyskill.reward.clip_target.ClipTargetSimilarity`).

* :class:`TextGoal` — CLIP image features of the rendered frame (or the state-projection MLP's prediction from
  the body positions, paper §3.3) against the cached CLIP text feature of a prompt;
* :class:`ImageGoal` — the same, against the CLIP image feature of a goal image (a file, an array, or a frame
  rendered from a motion clip's pose).

Rendering and encoding is the cost of this reward; ``render_interval`` and ``render_envs`` trade its freshness for
speed (:meth:`ClipFeatureGoal.similarity`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from anyskill.hlc.goal import HumanoidStates, clip_qpos
from anyskill.motion.clip import MotionClip
from anyskill.reward.clip_target import ClipTargetSimilarity
from anyskill.text.enhancer import Enhancement

if TYPE_CHECKING:
    from anyskill.reward.clip_model import ClipModel
    from anyskill.reward.projection import StateProjection
    from anyskill.sim.render import StateRenderer

Tensor = torch.Tensor
RewardSource = Literal["render", "projection"]


class ClipFeatureGoal:
    """Cosine similarity between a frame's CLIP image feature (rendered, or projected from the state) and a target."""

    description: str
    spec: dict[str, Any]

    def __init__(self, clip_model: ClipModel, renderer: StateRenderer | None, target: Tensor | None,
                 reward_source: RewardSource, projection: StateProjection | None,
                 render_interval: int = 1, render_envs: int | None = None):
        """``target``: the (E,) feature every frame is compared with; None for a subclass that scores each env
        against its own target (:meth:`_score`, e.g. :class:`~anyskill.hlc.general.PromptSetGoal`)."""
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
        self.target_similarity = ClipTargetSimilarity(target) if target is not None else None
        self.render_interval = render_interval
        self.render_envs = render_envs
        self._calls = 0
        self._offset = 0
        self._last: Tensor | None = None

    def image_features(self, states: HumanoidStates) -> Tensor:
        """(N, E) unit features of the frames: CLIP of the renders, or the projection MLP's prediction."""
        if self.projection is not None and self.reward_source == "projection":
            with torch.no_grad():  # an object-aware projection (a scene's) also reads the objects' qpos
                return F.normalize(self.projection.predict(states.body_pos, states.qpos), dim=-1)
        assert self.renderer is not None  # the constructor requires one for the render source
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
            self._last = self._score(feats, None).to(states.body_pos.device)
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
        self._last[ids.to(self._last.device)] = self._score(feats, ids).to(self._last.device)
        return self._last.clone()

    def _score(self, image_features: Tensor, env_ids: Tensor | None) -> Tensor:
        """(M,) similarities of the frames of envs ``env_ids`` (M,) (None: all envs) given their image features."""
        if self.target_similarity is None:
            raise NotImplementedError(f"{type(self).__name__} has no single target and must implement _score")
        return self.target_similarity(image_features)

    @property
    def clip_weights(self) -> str:
        return self.clip_model.spec.description


class TextGoal(ClipFeatureGoal):
    """cos(CLIP image feature of the frame, CLIP text feature of ``prompt``) (paper Eq. 3, first term).

    ``prompt``: the text, or an :class:`~anyskill.text.Enhancement` of it (paper §4.3): its enhanced text is
    encoded and the original and enhancer go into the description and ``spec``. ``reward_source="render"`` renders
    every frame and encodes it with CLIP; ``"projection"`` predicts the image feature from the 15 body positions
    with a trained :class:`StateProjection` (paper §3.3).
    """

    def __init__(self, clip_model: ClipModel, renderer: StateRenderer | None, prompt: str | Enhancement,
                 reward_source: RewardSource = "render", projection: StateProjection | None = None,
                 render_interval: int = 1, render_envs: int | None = None):
        enhancement = prompt if isinstance(prompt, Enhancement) else None
        text = prompt.text if isinstance(prompt, Enhancement) else prompt
        if not text.strip():
            raise ValueError("TextGoal needs a non-empty prompt")
        super().__init__(clip_model, renderer, clip_model.encode_text(text)[0], reward_source, projection,
                         render_interval, render_envs)
        self.prompt = text
        self.enhancement = enhancement
        origin = ""
        if enhancement is not None and enhancement.changed:
            by = f"llm {enhancement.model}" if enhancement.enhancer == "llm" else enhancement.enhancer
            origin = f" (enhanced from {enhancement.original!r}, {by})"
        self.description = f"text {text!r}{origin} | CLIP {self.clip_weights} | reward source {reward_source}"
        self.spec = {"kind": "text", "prompt": text, "reward_source": reward_source,
                     "clip_weights": clip_model.spec.weights}
        if enhancement is not None:
            self.spec["enhancement"] = enhancement.record()

    @property
    def text_feature(self) -> Tensor:
        """(E,) the unit CLIP text feature of the prompt (what a general policy is conditioned on)."""
        assert self.target_similarity is not None
        return self.target_similarity.target


class ImageGoal(ClipFeatureGoal):
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
                        projection: StateProjection | None = None) -> ImageGoal:
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
