"""Training data of the domain text–image model: this humanoid's renders with what they show, made here.

Frames come from two sources, rendered with the project's camera (:class:`~anyskill.sim.camera.CameraSpec`,
default placement, ``size`` px square, 112 by default):

* **clip replays**: every bundled clip (:func:`anyskill.data.default_library`) replayed kinematically, every
  ``clip_stride``-th frame, in ``clip_views`` views (view 0 turned to face the camera as the high-level policy's spawn
  does, the others at a random heading), the root moved to a random point within ``jitter_m`` of the origin (the
  camera is fixed 3 m in front of the origin and aims at the pelvis);
* **controller rollouts**: the low-level controller (:func:`anyskill.llc.load_llc`) from standing or a library state
  under random latents — half the envs hold one latent per episode, half switch to a new one every 20–60 control
  steps; latents are LLC encodings of random library windows or uniform on the sphere; every ``rollout_stride``-th
  control step is rendered; falls are kept until the env resets.

Each frame stores its body positions (m, env frame), root rotation (wxyz) and root velocity (m/s); the captioner
(:mod:`anyskill.domain.captions`) turns them into fact masks. Frames are grouped into short sequences
(``group``); a seeded 15 % of the groups is **held out** for evaluation, so held-out frames are never neighbours of
training frames.

    data = generate_domain_data(shipped_llc(), num_rollout_frames=8000)
    data.save("runs/domain_data/data.pt")
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anyskill.domain.captions import fact_masks, measure_facts, root_velocity
from anyskill.humanoid import rotations as rot
from anyskill.llc.controller import load_llc
from anyskill.motion.library import MotionLibrary
from anyskill.sim.camera import CameraSpec
from anyskill.sim.env import EnvConfig, HumanoidEnv

Tensor = torch.Tensor
SOURCES = ("clip", "rollout_fixed_latent", "rollout_latent_sequence")
HELDOUT_FRACTION = 0.15


@dataclass
class DomainData:
    """N frames: frames (N, S, S, 3) uint8; body_pos (N, 15, 3) m; root_rot (N, 4) wxyz; root_vel (N, 3) m/s;
    masks (N,) int64 fact bits; source (N,) index into :data:`SOURCES`; clip_id (N,) (-1 for rollouts); group (N,)
    sequence id; heldout (N,) bool; clip_names / clip_descriptions of the library; meta: how it was made."""

    frames: Tensor
    body_pos: Tensor
    root_rot: Tensor
    root_vel: Tensor
    masks: Tensor
    source: Tensor
    clip_id: Tensor
    group: Tensor
    heldout: Tensor
    clip_names: list[str]
    clip_descriptions: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: getattr(self, k) for k in self.__dataclass_fields__}, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> DomainData:
        d = torch.load(path, weights_only=True)
        return cls(**d)

    def subset(self, index: Tensor) -> DomainData:
        """The frames at ``index`` (a bool mask or indices), same library lists and meta."""
        tensors = {k: getattr(self, k)[index] for k in ("frames", "body_pos", "root_rot", "root_vel", "masks",
                                                         "source", "clip_id", "group", "heldout")}
        return DomainData(**tensors, clip_names=self.clip_names, clip_descriptions=self.clip_descriptions,
                          meta=self.meta)


def file_sha256(path: str | Path, chars: int = 16) -> str:
    """The first ``chars`` hex digits of the SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:chars]


def _yaw_quat(yaw: Tensor) -> Tensor:
    """(N,) rad -> (N, 4) wxyz rotations about z."""
    z = torch.zeros(yaw.shape[0], 3, dtype=yaw.dtype)
    z[:, 2] = 1.0
    return rot.quat_from_axis_angle(z, yaw)


def clip_replay_states(motion_lib: MotionLibrary, stride: int, views: int, jitter_m: float,
                       rng: np.random.Generator) -> dict[str, Tensor]:
    """Kinematic replays of every clip (module docstring). Returns qpos (M, 35), root_vel (M, 3) m/s in the new
    heading, clip_id (M,), group (M,) (one group per second of a clip view), all float64 / int64."""
    out: dict[str, list[Tensor]] = {"qpos": [], "root_vel": [], "clip_id": [], "group": []}
    group = 0
    for c_id, clip in enumerate(motion_lib.clips):
        root_pos = torch.from_numpy(clip.root_pos)
        root_rot_q = torch.from_numpy(clip.root_rot)
        vel = root_velocity(root_pos, clip.dt)
        frames = torch.arange(0, clip.num_frames, stride)
        for v in range(views):
            start_yaw = float(rot.heading_angle(root_rot_q[:1])[0])
            target = 0.0 if v == 0 else float(rng.uniform(-math.pi, math.pi))
            turn = _yaw_quat(torch.full((len(frames),), target - start_yaw, dtype=torch.float64))
            q_rot = rot.quat_mul(turn, root_rot_q[frames])
            v_rot = rot.quat_rotate(turn, vel[frames])
            pos = root_pos[frames].clone()
            pos[:, :2] = torch.from_numpy(rng.uniform(-jitter_m, jitter_m, (len(frames), 2)))
            qpos = torch.cat([pos, q_rot, torch.from_numpy(clip.dof_pos)[frames]], -1)
            seconds = (frames.double() * clip.dt).floor().long()
            out["qpos"].append(qpos)
            out["root_vel"].append(v_rot)
            out["clip_id"].append(torch.full((len(frames),), c_id, dtype=torch.long))
            out["group"].append(group + seconds)
            group += int(seconds.max()) + 1
    return {k: torch.cat(v) for k, v in out.items()}


@torch.no_grad()
def rollout_states(llc_checkpoint: str | Path, motion_lib: MotionLibrary, num_frames: int, num_envs: int,
                   stride: int, seed: int, group0: int = 0) -> dict[str, Tensor]:
    """Controller rollouts under random latents (module docstring), every ``stride``-th control step. Returns qpos
    (M, 35), body_pos (M, 15, 3) m, body_rot_root (M, 4), root_vel (M, 3) m/s, source (M,), group (M,) (one group
    per env and 2 s)."""
    llc = load_llc(llc_checkpoint)
    env = HumanoidEnv(EnvConfig(num_envs=num_envs, state_init="hybrid", fall_init_prob=0.0, episode_length=300,
                                seed=seed), motion_lib=motion_lib)
    gen = torch.Generator().manual_seed(seed)

    def new_latents(n: int) -> Tensor:
        _, _, windows = motion_lib.sample_amp_windows(n, llc.enc_steps, env.dt, generator=gen)
        encoded = llc.encode(windows)
        uniform = F.normalize(torch.randn(n, llc.latent_dim, generator=gen), dim=-1)
        pick = torch.rand(n, generator=gen) < 0.5
        return torch.where(pick[:, None], encoded, uniform)

    sequence = torch.arange(num_envs) % 2 == 1  # odd envs: random latent sequences
    obs = env.reset()["obs"]
    z = new_latents(num_envs)
    next_switch = torch.randint(20, 61, (num_envs,), generator=gen)
    episode = torch.zeros(num_envs, dtype=torch.long)
    age = torch.zeros(num_envs, dtype=torch.long)
    out: dict[str, list[Tensor]] = {"qpos": [], "body_pos": [], "root_rot": [], "root_vel": [], "source": [],
                                    "group": []}
    steps = -(-num_frames * stride // num_envs)
    for t in range(steps):
        switch = sequence & (age >= next_switch)
        if switch.any():
            z[switch] = new_latents(int(switch.sum()))
            next_switch[switch] = age[switch] + torch.randint(20, 61, (int(switch.sum()),), generator=gen)
        step_obs, _, done, _ = env.step(llc.act(obs, z))
        obs = step_obs["obs"]
        age += 1
        b = env.backend
        if t % stride == 0:
            out["qpos"].append(b.qpos().clone())
            out["body_pos"].append(b.body_pos().clone())
            out["root_rot"].append(b.body_rot()[:, 0].clone())
            out["root_vel"].append(b.qvel()[:, :3].clone())
            out["source"].append(1 + sequence.long())
            out["group"].append(group0 + (torch.arange(num_envs) * 100_000 + episode * 100 + age // 60))
        if done.any():  # the env reset these: a new episode with a new latent
            ids = done.nonzero().flatten()
            z[ids] = new_latents(len(ids))
            episode[ids] += 1
            age[ids] = 0
            next_switch[ids] = torch.randint(20, 61, (len(ids),), generator=gen)
    return {k: torch.cat(v)[:num_frames] for k, v in out.items()}


def _render(qpos: np.ndarray, size: int) -> np.ndarray:
    """(M, 35) qpos -> (M, size, size, 3) uint8 with the default camera at ``size`` px (one process, one renderer)."""
    import mujoco

    from anyskill.humanoid.model import load_humanoid
    from anyskill.sim.render import StateRenderer

    torch.set_num_threads(1)
    renderer = StateRenderer(mujoco.MjModel.from_xml_path(str(load_humanoid().xml_path)),
                             CameraSpec(width=size, height=size))
    frames = renderer.render_qpos(qpos).numpy()
    renderer.close()
    return frames


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the render workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def render_frames(qpos: Tensor, size: int, workers: int = 1) -> Tensor:
    """(M, 35) qpos -> (M, size, size, 3) uint8, split over ``workers`` processes (spawned: each has its own EGL
    context). Rendering is software OpenGL on CPU machines, ~50 ms of CPU per frame whatever the size."""
    q = qpos.detach().cpu().double().numpy()
    if workers <= 1 or len(q) < 2 * workers:
        return torch.from_numpy(_render(q, size))
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    chunks = np.array_split(q, workers)
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        parts = list(pool.map(_render, chunks, [size] * workers))
    return torch.from_numpy(np.concatenate(parts))


def generate_domain_data(llc_checkpoint: str | Path, num_rollout_frames: int = 4000, num_envs: int = 32,
                         clip_stride: int = 2, clip_views: int = 2, rollout_stride: int = 3, size: int = 112,
                         jitter_m: float = 0.5, seed: int = 0, motion_lib: MotionLibrary | None = None,
                         workers: int = 1) -> DomainData:
    """Render and caption the domain model's frames (module docstring); deterministic for a seed, an LLC and a
    library. ``size``: render px (the model resizes to its own input size as :class:`ClipModel` does); ``workers``:
    rendering processes."""
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    from anyskill.humanoid.skeleton import Skeleton

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    clips = clip_replay_states(motion_lib, clip_stride, clip_views, jitter_m, rng)
    skel = Skeleton(motion_lib.model) if hasattr(motion_lib, "model") else Skeleton()
    cq = clips["qpos"]
    c_pos, c_rot = skel.forward_kinematics(cq[:, :3], cq[:, 3:7], cq[:, 7:])
    rolls = rollout_states(llc_checkpoint, motion_lib, num_rollout_frames, num_envs, rollout_stride, seed,
                           group0=int(clips["group"].max()) + 1)
    qpos = torch.cat([cq.float(), rolls["qpos"].float()])
    body_pos = torch.cat([c_pos.float(), rolls["body_pos"].float()])
    root_rot = torch.cat([c_rot[:, 0].float(), rolls["root_rot"].float()])
    root_vel = torch.cat([clips["root_vel"].float(), rolls["root_vel"].float()])
    n_clip = len(cq)
    clip_id = torch.cat([clips["clip_id"], torch.full((len(rolls["qpos"]),), -1, dtype=torch.long)])
    source = torch.cat([torch.zeros(n_clip, dtype=torch.long), rolls["source"].long()])
    group = torch.cat([clips["group"], rolls["group"]])
    t_states = time.perf_counter() - t0
    cpu0 = cpu_seconds()
    frames = render_frames(qpos, size, workers)
    t_render, cpu_render = time.perf_counter() - t0 - t_states, cpu_seconds() - cpu0
    masks = fact_masks(measure_facts(body_pos, root_rot, root_vel), clip_id)
    uniq, inverse = torch.unique(group, return_inverse=True)
    g = torch.Generator().manual_seed(seed + 7)
    held_groups = torch.rand(len(uniq), generator=g) < HELDOUT_FRACTION
    meta = {"llc_checkpoint": str(Path(llc_checkpoint).resolve()), "llc_sha256": file_sha256(llc_checkpoint),
            "size_px": size, "camera": "CameraSpec() default: (3, 0, 1) m, fovy 45, aimed at the pelvis",
            "clip_stride": clip_stride, "clip_views": clip_views, "rollout_stride": rollout_stride,
            "num_envs": num_envs, "jitter_m": jitter_m, "seed": seed, "workers": workers, "frames_clip": n_clip,
            "frames_rollout": len(rolls["qpos"]), "states_s": round(t_states, 1), "render_s": round(t_render, 1),
            "render_cpu_s": round(cpu_render, 1)}
    return DomainData(frames=frames, body_pos=body_pos, root_rot=root_rot, root_vel=root_vel, masks=masks,
                      source=source, clip_id=clip_id, group=group, heldout=held_groups[inverse],
                      clip_names=list(motion_lib.clip_names), clip_descriptions=list(motion_lib.descriptions),
                      meta=meta)
