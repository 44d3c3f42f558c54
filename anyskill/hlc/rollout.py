"""Rollouts of a trained hierarchy (π_H on the frozen π_L) toward a goal: states, video, similarity curve.

    result = rollout("runs/hlc/hlc.pth", "llc.pth", goal, seconds=5, seed=0, out_dir="runs/hlc/rollout")
    result.files  # {"states": ....npz, "video": ....mp4 (or .gif), "similarity_csv": ..., "similarity_png": ...}

One env, deterministic policy (the mean latent), no early termination and no time limit inside the rollout, so the
recorded motion is exactly what the policy does for ``seconds``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anyskill.hlc.env import HighLevelEnv, HLCEnvConfig
from anyskill.hlc.goal import Goal, HumanoidStates
from anyskill.hlc.policy import HighLevelPolicy, load_hlc
from anyskill.llc.controller import LowLevelController, load_llc
from anyskill.provenance import Provenance
from anyskill.reward.early_termination import EarlyTerminationConfig

NO_EARLY_TERMINATION = EarlyTerminationConfig(mode="off", head_rule=False)


@dataclass
class RolloutResult:
    """One rollout at the LLC rate (30 Hz), T frames.

    times (T,) s; qpos (T, 35); body_pos (T, 15, 3) m; body_rot (T, 15, 4) wxyz; similarity (T,) goal similarity
    per frame; latents (T // llc_steps, 64) the policy's z per HLC step; pose_error (T,) m for a PoseGoal (else
    None); frames (T, H, W, 3) uint8 when rendered; files written (name -> path).
    """

    times: np.ndarray
    qpos: np.ndarray
    body_pos: np.ndarray
    body_rot: np.ndarray
    similarity: np.ndarray
    latents: np.ndarray
    goal: str
    pose_error: np.ndarray | None = None
    frames: np.ndarray | None = None
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def mean_similarity(self) -> float:
        return float(self.similarity.mean())

    @property
    def mean_pose_error(self) -> float:
        """m, mean over frames (NaN when the goal is not a pose)."""
        return float(self.pose_error.mean()) if self.pose_error is not None else float("nan")


def rollout(
    hlc: str | Path | HighLevelPolicy,
    llc: str | Path | LowLevelController,
    goal: Goal,
    seconds: float = 5.0,
    seed: int = 0,
    render: bool = True,
    out_dir: str | Path | None = None,
    state_init: str = "default",
    motion_lib=None,
    deterministic: bool = True,
    renderer=None,
    video_format: str | None = None,
) -> RolloutResult:
    """Run π_H (a checkpoint path or a loaded policy) on π_L toward ``goal`` for ``seconds`` s from ``state_init``.

    With ``out_dir`` writes ``states.npz`` (times, qpos, body_pos, body_rot, similarity, latents), the similarity
    curve ``similarity.csv`` and ``similarity.png``, and with ``render`` a video (``rollout.mp4`` when
    imageio-ffmpeg is installed, else ``rollout.gif``; ``video_format`` forces one). ``renderer``: a
    :class:`StateRenderer` to reuse (default: the goal's, else a new one).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    policy = load_hlc(hlc) if isinstance(hlc, (str, Path)) else hlc
    controller = load_llc(llc) if isinstance(llc, (str, Path)) else llc
    cfg = HLCEnvConfig(num_envs=1, episode_length=None, state_init=state_init,
                       early_termination=NO_EARLY_TERMINATION, stagger_episodes=False, record_states=True,
                       seed=seed)
    env = HighLevelEnv(cfg, controller, goal, motion_lib)
    num_hlc_steps = max(1, math.ceil(seconds / env.dt - 1e-9))
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset()["obs"]
    start = HumanoidStates.from_backend(env.env.backend)
    record = {"qpos": [start.qpos], "body_pos": [start.body_pos], "body_rot": [start.body_rot]}
    sims, latents = [goal.similarity(start)], []
    for _ in range(num_hlc_steps):
        z = policy.act(obs, deterministic=deterministic, generator=gen)
        obs_dict, _, _, info = env.step(z)
        obs = obs_dict["obs"]
        for key in record:
            record[key].append(info[f"llc_{key}"][0])
        sims.append(info["similarities"][0])
        latents.append(z[0])
    qpos_t, body_pos_t, body_rot_t = (torch.cat(record[k]).cpu() for k in ("qpos", "body_pos", "body_rot"))
    states = HumanoidStates(body_pos_t, body_rot_t, qpos_t)
    error = getattr(goal, "error", None)  # PoseGoal: the pose error, m
    pose_error = error(states).numpy() if error is not None else None
    result = RolloutResult(
        times=np.arange(len(qpos_t)) * env.env.dt,
        qpos=qpos_t.numpy(),
        body_pos=body_pos_t.numpy(),
        body_rot=body_rot_t.numpy(),
        similarity=torch.cat([s.reshape(-1) for s in sims]).cpu().numpy(),
        latents=torch.stack(latents).cpu().numpy(),
        goal=goal.description,
        pose_error=pose_error,
    )
    if render:
        if renderer is None:
            renderer = getattr(goal, "renderer", None)
        if renderer is None:
            from anyskill.sim.render import CameraSpec, StateRenderer

            renderer = StateRenderer(env.env.model.mj_model(), CameraSpec())
        result.frames = renderer.render_qpos(result.qpos).numpy()
    if out_dir is not None:
        result.files = _write(result, Path(out_dir), seed, policy, video_format, 1.0 / env.env.dt)
    return result


def _write(result: RolloutResult, out: Path, seed: int, policy: HighLevelPolicy, video_format: str | None,
           fps: float) -> dict[str, Path]:
    prov = Provenance("anyskill.hlc.rollout", config={"goal": result.goal, "policy_goal": policy.description,
                                                      "llc_checkpoint": policy.config.get("llc_checkpoint")},
                      seed=seed, clip_weights=str(policy.config.get("clip_weights", "none")))
    out.mkdir(parents=True, exist_ok=True)
    files = {"states": out / "states.npz"}
    np.savez_compressed(files["states"], times=result.times, qpos=result.qpos, body_pos=result.body_pos,
                        body_rot=result.body_rot, similarity=result.similarity, latents=result.latents,
                        goal=np.array(result.goal))
    curve = pd.DataFrame({"time_s": result.times, "similarity": result.similarity})
    if result.pose_error is not None:
        curve["pose_error_m"] = result.pose_error
    files["similarity_csv"] = prov.write_csv(curve, out / "similarity.csv")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(result.times, result.similarity, label="goal similarity")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("similarity")
    ax.set_title(result.goal[:80], fontsize=8)
    ax.grid(alpha=0.3)
    files["similarity_png"] = prov.save_figure(fig, out / "similarity.png")
    plt.close(fig)

    if result.frames is not None:
        from anyskill.sim.render import write_video

        if video_format is None:
            try:
                import imageio_ffmpeg  # noqa: F401

                video_format = "mp4"
            except ImportError:
                video_format = "gif"
        files["video"] = write_video(result.frames, out / f"rollout.{video_format}", fps=fps)
    return files


@dataclass
class Evaluation:
    """Batch evaluation of a policy: per-env means over the rollout (N,) and the per-frame curves (T,) averaged
    over envs. ``pose_error*`` are NaN when the goal is not a pose."""

    similarity: np.ndarray
    pose_error: np.ndarray
    similarity_curve: np.ndarray
    pose_error_curve: np.ndarray

    @property
    def mean_similarity(self) -> float:
        return float(self.similarity.mean())

    @property
    def mean_pose_error(self) -> float:
        return float(self.pose_error.mean())


@torch.no_grad()
def evaluate(
    hlc: str | Path | HighLevelPolicy,
    llc: str | Path | LowLevelController,
    goal: Goal,
    seconds: float = 2.0,
    num_envs: int = 8,
    seed: int = 0,
    deterministic: bool = True,
    state_init: str = "default",
    motion_lib=None,
) -> Evaluation:
    """Run ``num_envs`` rollouts of ``seconds`` s at once (no early termination, no time limit) and score every
    LLC frame with the goal. ``deterministic=False`` samples the policy's Gaussian (seeded by ``seed``), i.e.
    evaluates the behaviour the policy was trained with."""
    policy = load_hlc(hlc) if isinstance(hlc, (str, Path)) else hlc
    controller = load_llc(llc) if isinstance(llc, (str, Path)) else llc
    pose_error = getattr(goal, "error", None)  # PoseGoal: the pose error, m
    cfg = HLCEnvConfig(num_envs=num_envs, episode_length=None, state_init=state_init,
                       early_termination=NO_EARLY_TERMINATION, stagger_episodes=False,
                       record_states=pose_error is not None, seed=seed)
    env = HighLevelEnv(cfg, controller, goal, motion_lib)
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset()["obs"]
    sims, errors = [], []
    for _ in range(max(1, math.ceil(seconds / env.dt - 1e-9))):
        obs_dict, _, _, info = env.step(policy.act(obs, deterministic=deterministic, generator=gen))
        obs = obs_dict["obs"]
        sims.append(info["similarities"])
        if pose_error is not None:  # the env records states for it
            states = HumanoidStates(info["llc_body_pos"].flatten(0, 1), info["llc_body_rot"].flatten(0, 1),
                                    info["llc_qpos"].flatten(0, 1))
            errors.append(pose_error(states).view(num_envs, -1))
    sim = torch.cat(sims, dim=1).cpu().numpy()  # (N, T)
    err = torch.cat(errors, dim=1).cpu().numpy() if errors else np.full_like(sim, np.nan)
    return Evaluation(sim.mean(1), err.mean(1), sim.mean(0), err.mean(0))
