"""Rendered, encoded frames of controller rollouts: the data a state projection is calibrated on.

:func:`collect_calibration_data` runs the frozen LLC in ``num_envs`` humanoids (standing or random reference-state
starts, reset on falls) and renders + CLIP-encodes every ``render_every``-th LLC step of every env. Each env follows
a random **latent schedule** so the data covers what a high-level policy visits, untrained or trained: at each switch
it draws either the LLC encoding of a random 2-s library window (an atomic skill) or a uniformly random unit latent,
and holds it for 5 LLC steps (one HLC step: a random latent sequence, as an untrained π_H plays) up to 60 steps
(2 s). In an interaction scene the objects are placed at random at every reset and **moved** at random moments
(a free object, the ball: put somewhere around the humanoid and kicked at up to 3 m/s; a hinge, the door leaf: set to
a random angle and pushed at up to 2.5 rad/s), besides whatever the humanoid does to them, so the object-aware
projection sees the objects in states that no standing humanoid would cause.

Rendering uses :data:`anyskill.sim.render.FAST_RENDER` and encoding :class:`~anyskill.reward.fast_encode.
BatchedImageEncoder` (bfloat16 where the CPU supports it); both are part of the cache key
(:mod:`anyskill.hlc.projection_cache`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from anyskill.config.hlc import CalibrationSizes
from anyskill.hlc.goal import HumanoidStates
from anyskill.llc.controller import LowLevelController
from anyskill.sim.env import EnvConfig, HumanoidEnv

if TYPE_CHECKING:
    from anyskill.reward.fast_encode import BatchedImageEncoder
    from anyskill.sim.render import StateRenderer
    from anyskill.sim.scene import Scene

Tensor = torch.Tensor
HOLD_STEPS = (5, 10, 15, 30, 60)
"""LLC steps a drawn latent is held (5 = one HLC step at 6 Hz)."""


@dataclass
class CalibrationData:
    """M frames: body_pos (M, 15, 3) m, env frame; qpos (M, nq) humanoid then object coordinates; features (M, E)
    unit CLIP image features of their renders; env (M,) long, the env each came from; timings in s."""

    body_pos: Tensor
    qpos: Tensor
    features: Tensor
    env: Tensor
    timings: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.body_pos.shape[0])


class LatentSchedule:
    """Per-env latents that switch at random (module doc): reference-window encodings or random unit latents,
    each held for one of :data:`HOLD_STEPS` LLC steps."""

    def __init__(self, llc: LowLevelController, motion_lib, num_envs: int, dt: float, generator: torch.Generator):
        self.llc, self.lib, self.dt, self.gen = llc, motion_lib, dt, generator
        self.z = torch.zeros(num_envs, llc.latent_dim)
        self.left = torch.zeros(num_envs, dtype=torch.long)

    def step(self) -> Tensor:
        """(N, latent_dim) unit latents for this LLC step."""
        ids = torch.nonzero(self.left <= 0).flatten()
        if len(ids):
            n = len(ids)
            _, _, windows = self.lib.sample_amp_windows(n, self.llc.enc_steps, self.dt, generator=self.gen)
            z = self.llc.encode(windows).float().cpu()
            random_z = torch.nn.functional.normalize(torch.randn(n, self.llc.latent_dim, generator=self.gen), dim=-1)
            use_random = torch.rand(n, generator=self.gen) < 0.5
            self.z[ids] = torch.where(use_random[:, None], random_z, z)
            holds = torch.tensor(HOLD_STEPS)
            self.left[ids] = holds[torch.randint(len(holds), (n,), generator=self.gen)]
        self.left -= 1
        return self.z


def move_objects(env: HumanoidEnv, scene: Scene, prob: float, generator: torch.Generator) -> int:
    """With probability ``prob`` per env, move its objects (module doc); returns how many envs were touched."""
    hit = torch.nonzero(torch.rand(env.num_envs, generator=generator) < prob).flatten()
    if not len(hit):
        return 0
    b = env.backend
    q, v = b.object_qpos()[hit].clone().cpu(), b.object_qvel()[hit].clone().cpu()
    root = b.body_pos()[hit, 0].cpu()
    n, qo, vo = len(hit), 0, 0
    for obj in scene.objects:
        nq, nv = obj.sizes
        relocate = torch.rand(n, generator=generator) < 0.5
        if (nq, nv) == (7, 6):  # free body: place around the humanoid, kick
            r = 0.25 + 1.25 * torch.rand(n, generator=generator)
            a = 2 * math.pi * torch.rand(n, generator=generator)
            xy = root[:, :2] + torch.stack([r * torch.cos(a), r * torch.sin(a)], -1)
            q[:, qo:qo + 2] = torch.where(relocate[:, None], xy, q[:, qo:qo + 2])
            speed = 3.0 * torch.rand(n, generator=generator)
            d = 2 * math.pi * torch.rand(n, generator=generator)
            v[:, vo:vo + 3] = torch.stack([speed * torch.cos(d), speed * torch.sin(d),
                                           1.5 * torch.rand(n, generator=generator)
                                           * (torch.rand(n, generator=generator) < 0.3)], -1)
        elif (nq, nv) == (1, 1):  # hinge: a random angle, a push
            angle = (2 * torch.rand(n, generator=generator) - 1) * 1.6
            q[:, qo] = torch.where(relocate, angle, q[:, qo])
            v[:, vo] = (2 * torch.rand(n, generator=generator) - 1) * 2.5
        qo, vo = qo + nq, vo + nv
    b.set_object_state(hit.to(env.device), q.to(env.device), v.to(env.device))
    return n


@torch.no_grad()
def collect_calibration_data(llc: LowLevelController, encoder: BatchedImageEncoder, renderer: StateRenderer,
                             sizes: CalibrationSizes, motion_lib=None, scene: Scene | None = None,
                             progress: bool = False,
                             on_status: Callable[[str], None] | None = None) -> CalibrationData:
    """Render + encode ``sizes.frames`` frames of LLC rollouts (module doc); ``on_status`` hears an estimate of the
    remaining time after the first batch and the final rate."""
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    n = sizes.num_envs
    cfg = EnvConfig(num_envs=n, state_init="hybrid", fall_init_prob=0.0, episode_length=sizes.episode_length,
                    seed=sizes.seed)
    env = HumanoidEnv(cfg, motion_lib=motion_lib, scene=scene)
    gen = torch.Generator().manual_seed(sizes.seed)
    schedule = LatentSchedule(llc, motion_lib, n, env.dt, gen)
    obs = env.reset()["obs"]
    rounds = -(-sizes.frames // n)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=rounds * n, desc="calibration frames (render + CLIP)", unit="frame")
    body, qpos, feats, envs = [], [], [], []
    pending: list[HumanoidStates] = []
    t_render = t_encode = 0.0
    t0 = time.perf_counter()
    per_batch = max(1, sizes.encode_batch // n)

    def flush() -> None:
        nonlocal t_render, t_encode
        q = torch.cat([s.qpos for s in pending])
        t = time.perf_counter()
        frames = renderer.render_qpos(q)
        t_render += time.perf_counter() - t
        t = time.perf_counter()
        feats.append(encoder.encode(frames).cpu())
        t_encode += time.perf_counter() - t
        if bar is not None:
            bar.update(len(q))
        pending.clear()

    for r in range(rounds):
        for _ in range(sizes.render_every):
            if scene is not None:
                move_objects(env, scene, sizes.object_move_prob, gen)
            obs = env.step(llc.act(obs, schedule.step().to(obs.device)))[0]["obs"]
        states = HumanoidStates.from_backend(env.backend)
        states = HumanoidStates(states.body_pos.cpu().clone(), states.body_rot.cpu().clone(), states.qpos.cpu().clone())
        body.append(states.body_pos)
        qpos.append(states.qpos)
        envs.append(torch.arange(n))
        pending.append(states)
        if len(pending) >= per_batch or r == rounds - 1:
            first = not feats
            flush()
            if first and on_status is not None and rounds > per_batch:
                rate = per_batch * n / (time.perf_counter() - t0)
                on_status(f"rendering + encoding {rounds * n} frames at {rate:.1f} frames/s: about "
                          f"{rounds * n / rate / 60:.1f} min")
    if bar is not None:
        bar.close()
    wall = time.perf_counter() - t0
    m = sizes.frames
    data = CalibrationData(torch.cat(body)[:m], torch.cat(qpos)[:m], torch.cat(feats)[:m], torch.cat(envs)[:m],
                           {"collect_s": round(wall, 2), "render_s": round(t_render, 2), "encode_s": round(t_encode, 2),
                            "frames_per_s": round(rounds * n / wall, 2)})
    return data
