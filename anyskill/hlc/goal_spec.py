"""Rebuilding goals: motion clips by name and goals from the ``spec`` stored in high-level policy checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from anyskill.hlc.clip_goals import ImageGoal, TextGoal
from anyskill.hlc.general import PromptSetGoal
from anyskill.hlc.goal import Goal
from anyskill.hlc.pose_goal import PoseGoal
from anyskill.motion.clip import MotionClip
from anyskill.text.prompt_set import PromptSet

if TYPE_CHECKING:
    from anyskill.reward.clip_model import ClipModel
    from anyskill.reward.projection import StateProjection
    from anyskill.sim.render import StateRenderer


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
    """Rebuild a goal from its ``spec`` (as stored in an HLC checkpoint); CLIP goals (text, image, a general
    policy's prompt set) need ``clip_model`` and ``renderer`` (or ``projection`` for ``reward_source="projection"``)."""
    kind = spec.get("kind")
    if kind == "pose":
        if "clip" in spec:
            return PoseGoal.from_clip(find_clip(spec["clip"], motion_lib), spec.get("time"), sigma=spec["sigma"])
        return PoseGoal(spec["target_body_pos"], spec["target_root_rot"], sigma=spec["sigma"], name=spec["name"])
    if kind not in ("text", "image", "prompt_set"):
        raise ValueError(f"unknown goal kind {kind!r} in spec {spec}; expected 'text', 'image', 'prompt_set' or "
                         "'pose'")
    if clip_model is None:
        raise ValueError(f"a {kind} goal needs a ClipModel (weights {spec.get('clip_weights')!r}); pass clip_model")
    source = spec.get("reward_source", "render")
    if kind == "text":
        return TextGoal(clip_model, renderer, spec["prompt"], source, projection)
    if kind == "prompt_set":
        return PromptSetGoal(clip_model, renderer, PromptSet.from_record(spec["prompts"]), source, projection)
    if "clip" in spec:
        if renderer is None:
            raise ValueError("an image goal made from a motion clip's frame needs a StateRenderer to draw it; pass "
                             "renderer")
        return ImageGoal.from_clip_frame(clip_model, renderer, find_clip(spec["clip"], motion_lib), spec["time"],
                                         source, projection)
    if not spec.get("image"):
        raise ValueError("this image goal was built from an in-memory array and cannot be rebuilt; pass the goal")
    return ImageGoal(clip_model, renderer, spec["image"], source, projection)
