"""A kinematic, physics-free CLIP-optimisation baseline in the spirit of AvatarCLIP and MotionCLIP (paper §4.2,
Table 1) — **our re-implementation of the idea, not the original methods**, which optimise a body model's poses
(AvatarCLIP) or a motion auto-encoder's latent (MotionCLIP) against CLIP through a differentiable renderer.

Here the same 15-body humanoid is posed directly, without a simulator: a motion is K keyframes of (root height
offset, root rotation as a rotation vector, 28 hinge angles within their limits), linearly interpolated to 30 Hz and
placed at x = y = 0. MuJoCo's renderer is not differentiable, so the keyframes are optimised by the cross-entropy
method (CEM), gradient-free:

    repeat I times: draw P keyframe sets ~ N(μ, σ²); score each by the mean cos(f_I(render_t), f_d) over every
    ``stride``-th frame; μ, σ ← mean and standard deviation of the E best

and the best set seen is returned as a :class:`~anyskill.hlc.rollout.RolloutResult`, so that CLIP_S and the
plausibility metrics (:func:`anyskill.eval.rollout_metrics.rollout_metrics`) measure it as they measure the
physics-based methods. Nothing keeps its feet on the floor or its bodies apart: that is what the physics columns
are there to show.
"""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from anyskill.config.eval import KinematicSettings
from anyskill.hlc.rollout import RolloutResult
from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.humanoid.rotations import quat_from_exp_map
from anyskill.reward.clip_model import ClipModel
from anyskill.sim.render import StateRenderer

LABEL = "Kinematic CLIP optimisation (our re-implementation of the AvatarCLIP/MotionCLIP idea, not the original)"
FPS = 30.0


def keyframes_to_qpos(keys: np.ndarray, num_frames: int, model: HumanoidModel) -> np.ndarray:
    """keys (K, 4 + D): root height offset m, root rotation vector (3) rad, D hinge angles rad -> qpos (T, 7 + D)
    of T frames, linearly interpolated, root at (0, 0, spawn height + offset), hinges clipped to their limits."""
    k = len(keys)
    at = np.linspace(0, k - 1, num_frames)
    lo = np.floor(at).astype(int).clip(0, k - 2)
    w = (at - lo)[:, None]
    frames = (1 - w) * keys[lo] + w * keys[lo + 1]  # (T, 4 + D)
    qpos = np.zeros((num_frames, 7 + model.num_dofs))
    qpos[:, 2] = model.spawn_height + frames[:, 0]
    qpos[:, 3:7] = quat_from_exp_map(torch.as_tensor(frames[:, 1:4], dtype=torch.float64)).numpy()
    qpos[:, 7:] = np.clip(frames[:, 4:], model.dof_lower, model.dof_upper)
    return qpos


def body_states(qpos: np.ndarray, mj_model: mujoco.MjModel, num_bodies: int) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of humanoid qpos (T, nq) -> positions (T, B, 3) m and rotations (T, B, 4) wxyz of the
    humanoid's first B bodies (MuJoCo's world body 0 skipped)."""
    data = mujoco.MjData(mj_model)
    pos, rot = [], []
    for q in qpos:
        data.qpos[: len(q)] = q
        mujoco.mj_kinematics(mj_model, data)
        pos.append(data.xpos[1 : 1 + num_bodies].copy())
        rot.append(data.xquat[1 : 1 + num_bodies].copy())
    return np.stack(pos), np.stack(rot)


def optimise_kinematic(prompt: str, clip: ClipModel, renderer: StateRenderer, seconds: float = 2.0,
                       settings: KinematicSettings = KinematicSettings(), seed: int = 0,
                       render: bool = True) -> tuple[RolloutResult, list[float]]:
    """CEM over keyframes toward ``prompt`` (module docstring). Returns the best motion as a rollout of
    ``seconds`` s at 30 Hz (``similarity`` (T,): per-frame cos to the prompt; ``latents`` empty; ``frames`` when
    ``render``) and the best score after each iteration."""
    model = load_humanoid()
    rng = np.random.default_rng(seed)
    num_frames = max(2, int(round(seconds * FPS)) + 1)
    scored = np.arange(0, num_frames, settings.stride)
    text = clip.encode_text(prompt)[0]
    dim = 4 + model.num_dofs
    mean = np.zeros((settings.keyframes, dim))
    h_std, r_std, j_std = settings.init_std
    std = np.broadcast_to(np.array([h_std, r_std, r_std, r_std] + [j_std] * model.num_dofs),
                          (settings.keyframes, dim)).copy()
    best_keys, best_score, curve = mean.copy(), -np.inf, []
    for _ in range(settings.iterations):
        draws = mean + std * rng.standard_normal((settings.population, *mean.shape))
        qpos = np.stack([keyframes_to_qpos(d, num_frames, model)[scored] for d in draws])  # (P, M, nq)
        frames = renderer.render_qpos(qpos.reshape(-1, qpos.shape[-1]))
        scores = (clip.encode_images(frames) @ text.to(clip.device)).view(len(draws), -1).mean(1).cpu().numpy()
        order = np.argsort(scores)[::-1]
        if scores[order[0]] > best_score:
            best_score, best_keys = float(scores[order[0]]), draws[order[0]]
        elite = draws[order[: settings.elites]]
        mean, std = elite.mean(0), np.maximum(elite.std(0), settings.min_std)
        curve.append(best_score)
    qpos = keyframes_to_qpos(best_keys, num_frames, model)
    body_pos, body_rot = body_states(qpos, renderer.model, model.num_bodies)
    frames_all = renderer.render_qpos(qpos) if render else None
    if frames_all is not None:
        similarity = (clip.encode_images(frames_all) @ text.to(clip.device)).cpu().numpy()
    else:
        similarity = np.full(num_frames, np.nan)
    result = RolloutResult(
        times=np.arange(num_frames) / FPS, qpos=qpos, body_pos=body_pos, body_rot=body_rot, similarity=similarity,
        latents=np.zeros((0, 64)), goal=f"text {prompt!r} | {LABEL} | CLIP {clip.spec.description}",
        frames=frames_all.numpy() if frames_all is not None else None)
    return result, curve
