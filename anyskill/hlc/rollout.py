"""Rollouts of a trained hierarchy (π_H on the frozen π_L) toward a goal: states, video, similarity curve.

    result = rollout("runs/hlc/hlc.pth", "llc.pth", goal, seconds=5, seed=0, out_dir="runs/hlc/rollout")
    result.files  # {"states": ....npz, "video": ....mp4 (or .gif), "similarity_csv": ..., "similarity_png": ...}

One env, deterministic policy (the mean latent), no early termination and no time limit inside the rollout, so the
recorded motion is exactly what the policy does for ``seconds``. A policy trained in an interaction scene is rolled
out in that scene (its objects at their default placement) and the rollout reports the interaction metrics
(:meth:`anyskill.sim.scene.Scene.interaction_metrics`: ball displacement and peak speed, door angles, first
contact).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from anyskill.config.hlc import HLCEnvConfig
from anyskill.config.reward import EarlyTerminationConfig
from anyskill.hlc.env import HighLevelEnv
from anyskill.hlc.goal import Goal, HumanoidStates
from anyskill.hlc.policy import HighLevelPolicy, load_hlc
from anyskill.humanoid.model import load_humanoid
from anyskill.llc.controller import LowLevelController, load_llc
from anyskill.provenance import Provenance
from anyskill.sim.interaction import InteractionTrajectory
from anyskill.sim.scene import get_scene

NO_EARLY_TERMINATION = EarlyTerminationConfig(mode="off", head_rule=False)


@dataclass
class RolloutResult:
    """One rollout at the LLC rate (30 Hz), T frames.

    times (T,) s; qpos (T, 35 + K) (K: the scene objects' coordinates); body_pos (T, 15, 3) m; body_rot (T, 15, 4)
    wxyz; similarity (T,) goal similarity per frame; latents (T // llc_steps, 64) the policy's z per HLC step;
    pose_error (T,) m for a PoseGoal (else None); frames (T, H, W, 3) uint8 when rendered; files written (name ->
    path). In a scene: ``scene`` its name, object_qvel (T, Kv), object_contacts (T, 15) bool and ``interaction``
    its metrics.
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
    scene: str | None = None
    object_qvel: np.ndarray | None = None
    object_contacts: np.ndarray | None = None
    interaction: dict[str, float | str] | None = None

    @property
    def mean_similarity(self) -> float:
        return float(self.similarity.mean())

    @property
    def mean_pose_error(self) -> float:
        """m, mean over frames (NaN when the goal is not a pose)."""
        return float(self.pose_error.mean()) if self.pose_error is not None else float("nan")

    def interaction_trajectory(self) -> InteractionTrajectory:
        """The objects' side of a rollout in a scene (for :func:`anyskill.viz.interaction.plot_object_trajectories`)."""
        if self.scene is None or self.object_qvel is None or self.object_contacts is None:
            raise ValueError("this rollout was not run in an interaction scene")
        return InteractionTrajectory(get_scene(self.scene), self.times, self.qpos, self.object_qvel,
                                     self.object_contacts, load_humanoid().body_names)


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
    scene: str | None = None,
) -> RolloutResult:
    """Run π_H (a checkpoint path or a loaded policy) on π_L toward ``goal`` for ``seconds`` s from ``state_init``.

    With ``out_dir`` writes ``states.npz`` (times, qpos, body_pos, body_rot, similarity, latents; in a scene also
    object_qvel and object_contacts), the similarity curve ``similarity.csv`` and ``similarity.png``, in a scene
    ``interaction.json``, and with ``render`` a video (``rollout.mp4`` when imageio-ffmpeg is installed, else
    ``rollout.gif``; ``video_format`` forces one). ``renderer``: a :class:`StateRenderer` to reuse (default: the
    goal's, else a new one with the scene's camera). ``scene``: an interaction scene name (default: the one the
    policy was trained in, from its checkpoint).
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    policy = load_hlc(hlc) if isinstance(hlc, (str, Path)) else hlc
    controller = load_llc(llc) if isinstance(llc, (str, Path)) else llc
    scene = scene or trained_scene(policy)
    cfg = HLCEnvConfig(num_envs=1, episode_length=None, state_init=state_init,
                       early_termination=NO_EARLY_TERMINATION, stagger_episodes=False, record_states=True,
                       seed=seed, scene=scene, latent_action=policy.latent_action,
                       anchor_scale=policy.anchor_scale)
    env = HighLevelEnv(cfg, controller, goal, motion_lib)
    num_hlc_steps = max(1, math.ceil(seconds / env.dt - 1e-9))
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset()["obs"]
    start = HumanoidStates.from_backend(env.env.backend)
    record = {"qpos": [start.qpos], "body_pos": [start.body_pos], "body_rot": [start.body_rot]}
    if env.scene is not None:
        record.update(object_qvel=[env.env.backend.object_qvel()], object_contacts=[env.env.backend.object_contacts()])
    sims, latents = [goal.similarity(start)], []
    for _ in range(num_hlc_steps):
        obs_dict, _, _, info = env.step(policy.act(obs, deterministic=deterministic, generator=gen))
        obs = obs_dict["obs"]
        for key in record:
            record[key].append(info[f"llc_{key}"][0])
        sims.append(info["similarities"][0])
        latents.append(info["z"][0])
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
    if env.scene is not None:
        result.scene = env.scene.name
        result.object_qvel = torch.cat(record["object_qvel"]).cpu().numpy()
        result.object_contacts = torch.cat(record["object_contacts"]).cpu().numpy()
        result.interaction = result.interaction_trajectory().metrics()
    if render:
        if renderer is None:
            renderer = getattr(goal, "renderer", None)
        if renderer is None:
            from anyskill.sim.render import CameraSpec, StateRenderer

            renderer = (StateRenderer(env.env.model.mj_model(), CameraSpec()) if env.scene is None
                        else StateRenderer(env.scene.mj_model(env.env.model), env.scene.camera))
        result.frames = renderer.render_qpos(result.qpos).numpy()
    if out_dir is not None:
        result.files = _write(result, Path(out_dir), seed, policy, video_format, 1.0 / env.env.dt)
    return result


def trained_scene(policy: HighLevelPolicy) -> str | None:
    """The interaction scene a policy was trained in (from its checkpoint's env settings), or None."""
    return (policy.config.get("env") or {}).get("scene")


def _write(result: RolloutResult, out: Path, seed: int, policy: HighLevelPolicy, video_format: str | None,
           fps: float) -> dict[str, Path]:
    prov = Provenance("anyskill.hlc.rollout", config={"goal": result.goal, "policy_goal": policy.description,
                                                      "llc_checkpoint": policy.config.get("llc_checkpoint")},
                      seed=seed, clip_weights=str(policy.config.get("clip_weights", "none")))
    out.mkdir(parents=True, exist_ok=True)
    files = {"states": out / "states.npz"}
    arrays = {"times": result.times, "qpos": result.qpos, "body_pos": result.body_pos, "body_rot": result.body_rot,
              "similarity": result.similarity, "latents": result.latents, "goal": np.array(result.goal)}
    if result.object_qvel is not None and result.object_contacts is not None:
        arrays.update(scene=np.array(result.scene), object_qvel=result.object_qvel,
                      object_contacts=result.object_contacts)
    np.savez_compressed(files["states"], **arrays)  # type: ignore[arg-type]  # numpy's stubs: positional flags
    if result.interaction is not None:
        metrics = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in result.interaction.items()}
        files["interaction"] = prov.write_json({"scene": result.scene, **metrics}, out / "interaction.json")
    curve = pd.DataFrame({"time_s": result.times, "similarity": result.similarity})
    if result.pose_error is not None:
        curve["pose_error_m"] = result.pose_error
    files["similarity_csv"] = prov.write_csv(curve, out / "similarity.csv")

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
    over envs. ``pose_error*`` are NaN when the goal is not a pose. In a scene, ``interaction`` holds one row of
    interaction metrics per env (:meth:`anyskill.sim.scene.Scene.interaction_metrics`)."""

    similarity: np.ndarray
    pose_error: np.ndarray
    similarity_curve: np.ndarray
    pose_error_curve: np.ndarray
    interaction: pd.DataFrame | None = None

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
    scene: str | None = None,
) -> Evaluation:
    """Run ``num_envs`` rollouts of ``seconds`` s at once (no early termination, no time limit) and score every
    LLC frame with the goal. ``deterministic=False`` samples the policy's Gaussian (seeded by ``seed``), i.e.
    evaluates the behaviour the policy was trained with. ``scene``: as in :func:`rollout` (default: the policy's)."""
    policy = load_hlc(hlc) if isinstance(hlc, (str, Path)) else hlc
    controller = load_llc(llc) if isinstance(llc, (str, Path)) else llc
    pose_error = getattr(goal, "error", None)  # PoseGoal: the pose error, m
    scene = scene or trained_scene(policy)
    cfg = HLCEnvConfig(num_envs=num_envs, episode_length=None, state_init=state_init,
                       early_termination=NO_EARLY_TERMINATION, stagger_episodes=False,
                       record_states=pose_error is not None or scene is not None, seed=seed, scene=scene,
                       latent_action=policy.latent_action, anchor_scale=policy.anchor_scale)
    env = HighLevelEnv(cfg, controller, goal, motion_lib)
    gen = torch.Generator().manual_seed(seed)
    obs = env.reset()["obs"]
    sims, errors = [], []
    objects: dict[str, list[Tensor]] = {"llc_qpos": [], "llc_object_qvel": [], "llc_object_contacts": []}
    for _ in range(max(1, math.ceil(seconds / env.dt - 1e-9))):
        obs_dict, _, _, info = env.step(policy.act(obs, deterministic=deterministic, generator=gen))
        obs = obs_dict["obs"]
        sims.append(info["similarities"])
        if pose_error is not None:  # the env records states for it
            states = HumanoidStates(info["llc_body_pos"].flatten(0, 1), info["llc_body_rot"].flatten(0, 1),
                                    info["llc_qpos"].flatten(0, 1))
            errors.append(pose_error(states).view(num_envs, -1))
        if env.scene is not None:
            for key, frames in objects.items():
                frames.append(info[key])
    sim = torch.cat(sims, dim=1).cpu().numpy()  # (N, T)
    err = torch.cat(errors, dim=1).cpu().numpy() if errors else np.full_like(sim, np.nan)
    interaction = None
    if env.scene is not None:
        qpos, qvel, contacts = (torch.cat(objects[k], dim=1).cpu().numpy() for k in objects)  # (N, T, ...)
        times = np.arange(1, qpos.shape[1] + 1) * env.env.dt
        k = env.scene.object_qpos_size
        interaction = pd.DataFrame([env.scene.interaction_metrics(times, qpos[i, :, qpos.shape[2] - k:], qvel[i],
                                                                  contacts[i], env.env.model.body_names)
                                    for i in range(num_envs)])
    return Evaluation(sim.mean(1), err.mean(1), sim.mean(0), err.mean(0), interaction)
