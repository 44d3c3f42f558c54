"""All measured columns of one rollout (paper Tables 1–3): CLIP_S, the plausibility metrics and, in a scene, the
interaction metrics of Table 2.

    row = rollout_metrics(result, clip=clip, prompt="raise both arms")   # result: anyskill.hlc.rollout.RolloutResult
"""

from __future__ import annotations

from anyskill.eval.clip_score import clip_score
from anyskill.eval.physics import physics_metrics
from anyskill.hlc.rollout import RolloutResult
from anyskill.reward.clip_model import ClipModel
from anyskill.sim.scene import get_scene


def interaction_metrics(result: RolloutResult) -> dict[str, float | str]:
    """The interaction metrics of a rollout in a scene (:meth:`anyskill.sim.scene.Scene.interaction_metrics`: the
    objects' displacement, speed or angles, first contact, time in contact); empty without a scene."""
    if result.scene is None:
        return {}
    return result.interaction_trajectory().metrics()


def rollout_metrics(result: RolloutResult, clip: ClipModel | None = None, prompt: str | None = None,
                    clip_stride: int = 1) -> dict[str, float | bool | str]:
    """One row of measurements of ``result``: :func:`~anyskill.eval.physics.physics_metrics` (replayed in the
    rollout's scene, if any), ``clip_s`` (:func:`~anyskill.eval.clip_score.clip_score` of every ``clip_stride``-th
    rendered frame against ``prompt``, when ``clip`` is given) and :func:`interaction_metrics`."""
    if clip_stride < 1:
        raise ValueError(f"clip_stride must be >= 1, got {clip_stride}")
    mj_model = get_scene(result.scene).mj_model() if result.scene is not None else None
    row: dict[str, float | bool | str] = dict(physics_metrics(result.times, result.qpos, mj_model))
    if clip is not None:
        if prompt is None or result.frames is None:
            raise ValueError("CLIP_S needs the instruction (prompt=...) and a rendered rollout (rollout(render=True))")
        row["clip_s"] = clip_score(result.frames[::clip_stride], prompt, clip)
    row.update(interaction_metrics(result))
    return row
