"""Held-out skill evaluation: does each latent make the humanoid perform *its* skill, from a standing start?

Every clip's latent (:func:`~anyskill.llc.evaluate.clip_latents`) is held for ``seconds`` (10 s) by the controller,
acting deterministically, from the default standing pose — where the high-level policy starts too — so this tests
what the latent selects rather than how well a reference motion is continued from the clip's own states. The
rollouts are fresh (no reward, no training data), deterministic and longer than any training episode's tracked
part. Per clip:

* ``survived``: no fall (the env's fall rule) during the rollout; ``fall_time_s`` (NaN if none);
* ``own_distance_m``: pose distance from the rollout to the clip (below), and the distance to every other clip,
  from which ``identified_as`` = the nearest clip and ``identified`` = whether that is the clip itself.

Pose distance: each frame is described by the 15 body positions relative to the point on the ground below the
root, in the root's heading frame (so it ignores where the humanoid is and which way it faces, but keeps heights);
two frames are ``d(a, b)`` = mean over bodies of the Euclidean distance (m). Between a rollout R and a clip M (its
frames at the control rate) the distance is the symmetric chamfer distance

    D(R, M) = 1/2 [ mean_{r in R} min_{m in M} d(r, m) + mean_{m in M} min_{r in R} d(r, m) ].

The first term asks "is everything the humanoid did part of the clip?", the second "did it show every pose of the
clip?", so standing still is close to a standing clip but far from a waving one (whose raised-arm frames it never
shows). Chance level of identification is 1 / number of clips. ``clip_distances`` gives D between the clips
themselves: near-duplicates (e.g. two recordings of walking) cannot be told apart by any controller.

The idle check holds the latent of ``idle_clip`` for ``idle_seconds`` (60 s) and reports whether the humanoid
stays up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import torch

from anyskill.config import CALMSettings
from anyskill.humanoid import rotations as rot
from anyskill.llc.controller import LowLevelController
from anyskill.llc.evaluate import clip_latents, rollout_llc

if TYPE_CHECKING:
    from anyskill.motion.library import MotionLibrary

Tensor = torch.Tensor


def pose_features(body_pos: Tensor, root_rot: Tensor) -> Tensor:
    """(..., B, 3) body positions relative to the ground point below the root, in the root's heading frame, m.

    body_pos (..., B, 3) m world (body 0 = root); root_rot (..., 4) wxyz."""
    origin = body_pos[..., :1, :].clone()
    origin[..., 2] = 0.0
    q = rot.heading_quat_inverse(root_rot)[..., None, :].expand(*body_pos.shape[:-1], 4)
    return rot.quat_rotate(q, body_pos - origin)


def frame_distances(a: Tensor, b: Tensor) -> Tensor:
    """(Ta, Tb) mean over bodies of the distance between the frames of pose features a (Ta, B, 3), b (Tb, B, 3)."""
    return (a[:, None] - b[None]).norm(dim=-1).mean(-1)


def chamfer_distance(a: Tensor, b: Tensor) -> float:
    """Symmetric chamfer distance (m) between two pose sequences (Ta, B, 3) and (Tb, B, 3) (module docstring)."""
    d = frame_distances(a, b)
    return 0.5 * float(d.min(1).values.mean() + d.min(0).values.mean())


def clip_pose_features(lib: MotionLibrary, dt: float) -> list[Tensor]:
    """Pose features (T_c, B, 3) of every clip's frames at times k * dt."""
    out = []
    for c in range(lib.num_clips):
        times = torch.arange(0.0, float(lib.durations[c]) + 1e-6, dt, device=lib.device)
        s = lib.state_at(torch.full((len(times),), c, device=lib.device), times)
        out.append(pose_features(s.body_pos, s.root_rot).cpu())
    return out


def clip_distance_matrix(lib: MotionLibrary, dt: float = CALMSettings.motion_dt) -> pd.DataFrame:
    """D(clip i, clip j) (m) between all clips, frames ``dt`` s apart (default: the control step): how far apart the
    skills are under the identification metric."""
    feats = clip_pose_features(lib, dt)
    names = lib.clip_names
    return pd.DataFrame([[chamfer_distance(a, b) for b in feats] for a in feats], index=names, columns=names)


@dataclass
class SkillEvaluation:
    """Result of :func:`evaluate_skills`.

    per_clip: one row per clip (clip, category, survived, fall_time_s, own_distance_m, nearest_other_m,
    identified_as, identified); distances (C, C) DataFrame, rows = rollouts (by latent), columns = clips;
    idle: {"clip", "seconds", "survived", "fall_time_s"} (empty when no idle clip); summary: survival_rate,
    top1_accuracy, chance, mean_own_distance_m, idle_survived, idle_seconds.
    """

    per_clip: pd.DataFrame
    distances: pd.DataFrame
    idle: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def _first_true(mask: Tensor) -> Tensor:
    """(N,) index of the first True along dim 0 of (H, N), or H where there is none."""
    h = mask.shape[0]
    steps = torch.arange(h, device=mask.device)[:, None].expand_as(mask)
    return torch.where(mask, steps, torch.full_like(steps, h)).min(0).values


@torch.no_grad()
def standing_rollouts(llc: LowLevelController, lib: MotionLibrary, z: Tensor, seconds: float, seed: int = 0
                      ) -> tuple[Tensor, Tensor, Tensor]:
    """Hold latents ``z`` (N, d) for ``seconds`` from the default standing pose, no resets (a fallen humanoid keeps
    lying). Returns pose features (H, N, B, 3), fell (N,) bool and fall step (N,) long (H where none)."""
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    env = HumanoidEnv(EnvConfig(num_envs=len(z), state_init="default", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None, enable_early_termination=False, seed=seed), motion_lib=lib)
    env.reset()
    roll = rollout_llc(llc, env, z, int(round(seconds / env.dt)))
    first = _first_true(roll.fallen)
    fell = roll.fallen.any(0)
    return pose_features(roll.body_pos, roll.root_rot).cpu(), fell.cpu(), first.cpu()


@torch.no_grad()
def evaluate_skills(llc: LowLevelController, lib: MotionLibrary, seconds: float = 10.0,
                    idle_clip: str | None = "idle_stand",
                    idle_seconds: float = 60.0, seed: int = 0) -> SkillEvaluation:
    """The held-out skill evaluation of the module docstring for every clip of ``lib``."""
    if seconds <= 0 or idle_seconds <= 0:
        raise ValueError(f"seconds and idle_seconds must be > 0, got {seconds}, {idle_seconds}")
    dt = llc.motion_dt
    c = lib.num_clips
    ids = torch.arange(c, device=lib.device)
    z = clip_latents(llc, lib, ids, dt)
    feats, fell, first = standing_rollouts(llc, lib, z, seconds, seed)
    if abs(seconds / feats.shape[0] - dt) > 1e-6:
        raise ValueError(f"the env's control step is not the controller's motion_dt = {dt:.6f} s, which the clips' "
                         "latents assume")
    clips = clip_pose_features(lib, dt)
    dist = torch.tensor([[chamfer_distance(feats[:, i], clips[j]) for j in range(c)] for i in range(c)])
    nearest = dist.argmin(1)
    other = dist.clone()
    other[ids.cpu(), ids.cpu()] = float("inf")
    names = lib.clip_names
    per_clip = pd.DataFrame({
        "clip": names,
        "category": lib.categories,
        "survived": (~fell).tolist(),
        "fall_time_s": [float(f + 1) * dt if fl else float("nan")
                        for f, fl in zip(first.tolist(), fell.tolist(), strict=True)],
        "own_distance_m": dist.diagonal().tolist(),
        "nearest_other_m": other.min(1).values.tolist(),
        "identified_as": [names[i] for i in nearest.tolist()],
        "identified": (nearest == ids.cpu()).tolist(),
    })
    idle: dict = {}
    if idle_clip is not None and idle_clip in names:
        k = names.index(idle_clip)
        _, idle_fell, idle_first = standing_rollouts(llc, lib, z[k : k + 1], idle_seconds, seed)
        idle = {"clip": idle_clip, "seconds": idle_seconds, "survived": not bool(idle_fell[0]),
                "fall_time_s": float(idle_first[0] + 1) * dt if bool(idle_fell[0]) else float("nan")}
    summary = {
        "clips": c,
        "seconds": seconds,
        "survival_rate": float((~fell).float().mean()),
        "top1_accuracy": float((nearest == ids.cpu()).float().mean()),
        "chance": 1.0 / c,
        "mean_own_distance_m": float(dist.diagonal().mean()),
        "idle_survived": idle.get("survived"),
        "idle_seconds": idle.get("seconds"),
    }
    return SkillEvaluation(per_clip=per_clip, distances=pd.DataFrame(dist.numpy(), index=names, columns=names),
                           idle=idle, summary=summary)


def skill_curve(checkpoints: list, lib: MotionLibrary, seconds: float = 10.0, idle_seconds: float = 60.0,
                seed: int = 0, progress: bool = False) -> pd.DataFrame:
    """The summary of :func:`evaluate_skills` for each checkpoint (paths of CALM checkpoints), one row each, indexed
    by training samples: epoch, survival_rate, top1_accuracy, chance, mean_own_distance_m, idle_survived,
    identified (the clips identified, comma-separated), checkpoint (file name)."""
    from tqdm.auto import tqdm

    from anyskill.llc.controller import load_llc

    rows = []
    for path in tqdm(checkpoints, desc="skill curve", disable=not progress):
        state = torch.load(path, map_location="cpu", weights_only=False)
        result = evaluate_skills(load_llc(path), lib, seconds=seconds, idle_seconds=idle_seconds, seed=seed)
        s = result.summary
        rows.append({"samples": int(state["frame"]), "epoch": int(state["epoch"]),
                     **{k: s[k] for k in ("survival_rate", "top1_accuracy", "chance", "mean_own_distance_m",
                                          "idle_survived")},
                     "identified": ",".join(result.per_clip.loc[result.per_clip["identified"], "clip"]),
                     "checkpoint": Path(path).name})
    return pd.DataFrame(rows).set_index("samples")
