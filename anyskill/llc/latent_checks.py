"""Two more held-out checks of a low-level controller's latent interface, beside the held skills (:mod:`.skills`).

* **Sliding latents** (:func:`evaluate_sliding`): how a high-level policy replays a clip. Each clip starts in its
  own first frame; every ``llc_steps`` (5) control steps the latent is re-encoded from the clip's window that starts
  now (frames t .. t + 59 dt, the last frame repeated past the clip's end) and the controller acts deterministically
  until the clip ends. Per clip: ``finished`` (no fall, the env's fall rule), ``fall_time_s`` and the mean
  root-relative body error (m; 15 bodies, each character's heading frame) against the clip at the same time, over
  the steps before any fall.
* **Random latents** (:func:`evaluate_random_latents`): unit latents drawn uniformly on the sphere, from the standing
  pose, either held for ``seconds`` or replaced every ``llc_steps`` steps: the fraction that stays up. A high-level
  policy explores exactly such latents early in training.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F

from anyskill.llc.evaluate import heading_local

if TYPE_CHECKING:
    from anyskill.motion.library import MotionLibrary

Tensor = torch.Tensor


def forward_windows(lib: MotionLibrary, clip_ids: Tensor, start_times: Tensor, steps: int, dt: float) -> Tensor:
    """(N, steps, 125) AMP windows that start at ``start_times`` (N,) s: frames t .. t + (steps - 1) dt, newest
    first, times past a clip's end clamped to its last frame."""
    ends = start_times + (steps - 1) * dt
    return lib.amp_obs_window(clip_ids, ends, steps, dt)


@torch.no_grad()
def evaluate_sliding(llc: Any, lib: MotionLibrary, llc_steps: int = 5, min_seconds: float = 0.0, seed: int = 0
                     ) -> pd.DataFrame:
    """Sliding-latent replay of every clip (module docstring); one row per clip: clip, category, finished,
    fall_time_s, local_error_m, seconds."""
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    c = lib.num_clips
    env = HumanoidEnv(EnvConfig(num_envs=c, state_init="start", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None, enable_early_termination=False, seed=seed), motion_lib=lib)
    env.reset()
    ids = torch.arange(c, device=lib.device)
    env.start_from_reference(ids, ids, torch.zeros(c, device=lib.device))
    dt = env.dt
    horizon = (lib.durations.cpu().clamp_min(min_seconds) / dt).round().long()
    h = int(horizon.max())
    llc.reset_timing()
    obs = env.policy_observation()
    alive = torch.ones(c, dtype=torch.bool)
    fall = torch.full((c,), -1)
    err, count = torch.zeros(c), torch.zeros(c)
    z = None
    for k in range(h):
        if k % llc_steps == 0:
            z = llc.encode(forward_windows(lib, ids, torch.full((c,), k * dt, device=lib.device), llc.enc_steps, dt))
        obs_d, _, _, extras = env.step(llc.act(obs, z))
        obs = obs_d["obs"]
        in_h = k < horizon
        newly = alive & extras["fallen"].cpu() & in_h
        fall = torch.where(newly, torch.full_like(fall, k + 1), fall)
        alive &= ~newly
        ref = lib.state_at(ids, torch.full((c,), (k + 1) * dt, device=lib.device))
        b = env.backend
        e = (heading_local(b.body_pos(), b.body_rot()[:, 0]) - heading_local(ref.body_pos, ref.root_rot).to(
            b.body_pos().device)).norm(dim=-1).mean(-1).cpu()
        live = alive & in_h
        err += e * live
        count += live.float()
    return pd.DataFrame({
        "clip": lib.clip_names, "category": lib.categories, "finished": (fall < 0).tolist(),
        "fall_time_s": [float(f) * dt if f >= 0 else float("nan") for f in fall.tolist()],
        "local_error_m": (err / count.clamp_min(1)).tolist(), "seconds": (horizon.float() * dt).tolist()})


@torch.no_grad()
def evaluate_random_latents(llc: Any, lib: MotionLibrary, num: int = 32, seconds: float = 10.0, llc_steps: int = 5,
                            seed: int = 0) -> dict[str, float]:
    """Random unit latents from standing (module docstring): {"held_survival", "switched_survival"} fractions."""
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for mode in ("held", "switched"):
        env = HumanoidEnv(EnvConfig(num_envs=num, state_init="default", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                    episode_length=None, enable_early_termination=False, seed=seed), motion_lib=lib)
        env.reset()
        llc.reset_timing()
        obs = env.policy_observation()
        fell = torch.zeros(num, dtype=torch.bool)
        z = F.normalize(torch.randn(num, llc.latent_dim, generator=gen), dim=-1)
        for k in range(int(round(seconds / env.dt))):
            if mode == "switched" and k and k % llc_steps == 0:
                z = F.normalize(torch.randn(num, llc.latent_dim, generator=gen), dim=-1)
            obs_d, _, _, extras = env.step(llc.act(obs, z.to(env.device)))
            obs = obs_d["obs"]
            fell |= extras["fallen"].cpu()
        out[f"{mode}_survival"] = float((~fell).float().mean())
    out["num"] = float(num)
    out["seconds"] = float(seconds)
    return out
