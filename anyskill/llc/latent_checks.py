"""Two more held-out checks of a low-level controller's latent interface, beside the held skills (:mod:`.skills`).

* **Sliding latents** (:func:`evaluate_sliding`): how a high-level policy replays a clip. Each clip starts in its
  own first frame; every ``llc_steps`` (5) control steps the latent is re-encoded from the clip's window that starts
  now (frames t .. t + 59 dt, the last frame repeated past the clip's end) and the controller acts deterministically
  until the clip ends. Per clip: ``finished`` (no fall, the env's fall rule), ``fall_time_s`` and the mean
  root-relative body error (m; 15 bodies, each character's heading frame) against the clip at the same time, over
  the steps before any fall.
* **Random latents** (:func:`evaluate_random_latents`): unit latents drawn uniformly on the sphere, from the standing
  pose, either held for ``seconds`` or replaced every ``llc_steps`` steps: the fraction that stays up, and how varied
  the motion is (:func:`pose_spread`). A high-level policy with free latent actions explores such latents.
* **An untrained high-level policy** (:func:`evaluate_untrained_hlc`): latents drawn as π_H draws them at
  initialisation — a freshly initialised actor of π_H's network (the ``laptop`` profile's sizes) on the policy
  observation, plus its initial noise (std e^INIT_LOG_STD ≈ 0.1), every ``llc_steps`` steps — through the free action
  normalize(a) and through the anchored action normalize(μ_p(s) + σ a) (:mod:`anyskill.llc.prior`), from standing,
  for ``seconds``: the fraction that stays up and the pose spread, so that a controller that survives by standing
  still shows as a spread near 0 (the clips' own spread is reported beside it).
* **Over seeds** (:func:`latent_robustness`, ``anyskill latent-robustness``): both of the above per seed, so that
  controllers are compared on several draws of :data:`~anyskill.config.eval.LATENT_CHECK_ENVS` characters.

**Pose spread** (m): the root-relative body positions (15 bodies, each character's heading frame) of every env at
every control step before its fall, their RMS distance per body to the mean pose over time and envs; ``_time``: the
same around each env's own mean pose (how much each character moves), ``_envs``: of the envs' mean poses around the
overall mean (how different the characters are).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
import torch.nn.functional as F

from anyskill.config.eval import LATENT_CHECK_ENVS
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
def pose_spread(poses: Tensor, alive: Tensor) -> dict[str, float]:
    """Pose spread (module docstring) of heading-frame root-relative body positions ``poses`` (T, N, B, 3) at the
    steps where ``alive`` (T, N): {"pose_spread_m", "pose_spread_time_m", "pose_spread_envs_m"} (0 with no step)."""
    w = alive.float()[..., None, None]
    count = w.sum()
    if count == 0:
        return {"pose_spread_m": 0.0, "pose_spread_time_m": 0.0, "pose_spread_envs_m": 0.0}
    mean = (poses * w).sum((0, 1)) / count  # (B, 3)
    total = ((poses - mean).square().sum(-1).mean(-1) * w[..., 0, 0]).sum() / count
    per_env_n = w.sum(0)  # (N, 1, 1)
    seen = per_env_n[:, 0, 0] > 0
    env_mean = (poses * w).sum(0) / per_env_n.clamp_min(1)  # (N, B, 3)
    within = ((poses - env_mean).square().sum(-1).mean(-1) * w[..., 0, 0]).sum(0) / per_env_n[:, 0, 0].clamp_min(1)
    between = (env_mean[seen] - mean).square().sum(-1).mean(-1)
    return {"pose_spread_m": float(total.sqrt()), "pose_spread_time_m": float(within[seen].mean().sqrt()),
            "pose_spread_envs_m": float(between.mean().sqrt())}


@torch.no_grad()
def library_pose_spread(lib: MotionLibrary, dt: float = 1.0 / 30.0) -> float:
    """Pose spread (m) of the clips' own frames (every ``dt`` of every clip): the scale of a varied repertoire."""
    ids, times = [], []
    for c in range(lib.num_clips):
        t = torch.arange(0.0, float(lib.durations[c]) + 1e-6, dt)
        ids.append(torch.full((len(t),), c, dtype=torch.long))
        times.append(t)
    s = lib.state_at(torch.cat(ids).to(lib.device), torch.cat(times).to(lib.device))
    poses = heading_local(s.body_pos, s.root_rot).cpu()
    return pose_spread(poses[:, None], torch.ones(len(poses), 1, dtype=torch.bool))["pose_spread_m"]


@dataclass
class LatentRollout:
    """What :func:`rollout_latents` recorded: fell (N,) bool; root_height (T + 1, N) m (the first row the start);
    alive (T, N) bool, the env had not fallen after step t; poses (T, N, B, 3) heading-frame root-relative body
    positions after each step; latents (T, N, D) the latent of each step; dt s per step."""

    fell: Tensor
    root_height: Tensor
    alive: Tensor
    poses: Tensor
    latents: Tensor
    dt: float

    @property
    def survival(self) -> float:
        return float((~self.fell).float().mean())

    def spread(self) -> dict[str, float]:
        return pose_spread(self.poses, self.alive)


LatentDraw = Callable[[int, Tensor, "Tensor | None"], Tensor]
"""``draw(k, obs, z_prev)`` -> latents (N, D) at control step k (a multiple of the cadence) for observations obs
(N, 223); z_prev None at k = 0."""


@torch.no_grad()
def rollout_latents(llc: Any, lib: MotionLibrary, draw: LatentDraw, num: int = 32, seconds: float = 10.0,
                    llc_steps: int = 5, seed: int = 0) -> LatentRollout:
    """``num`` envs from the standing pose, the controller acting deterministically for ``seconds`` on the latents
    ``draw`` gives every ``llc_steps`` control steps (no early termination: the env's fall rule is recorded)."""
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    env = HumanoidEnv(EnvConfig(num_envs=num, state_init="default", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None, enable_early_termination=False, seed=seed), motion_lib=lib)
    env.reset()
    llc.reset_timing()
    obs = env.policy_observation()
    b = env.backend
    fell = torch.zeros(num, dtype=torch.bool)
    heights, alive, poses, latents = [b.body_pos()[:, 0, 2].cpu()], [], [], []
    z = None
    for k in range(int(round(seconds / env.dt))):
        if k % llc_steps == 0:
            z = draw(k, obs, z)
        assert z is not None
        obs_d, _, _, extras = env.step(llc.act(obs, z.to(env.device)))
        obs = obs_d["obs"]
        fell |= extras["fallen"].cpu()
        heights.append(b.body_pos()[:, 0, 2].cpu())
        alive.append(~fell)
        poses.append(heading_local(b.body_pos(), b.body_rot()[:, 0]).cpu())
        latents.append(z.cpu())
    return LatentRollout(fell, torch.stack(heights), torch.stack(alive), torch.stack(poses), torch.stack(latents),
                         env.dt)


@torch.no_grad()
def evaluate_random_latents(llc: Any, lib: MotionLibrary, num: int = LATENT_CHECK_ENVS, seconds: float = 10.0,
                            llc_steps: int = 5, seed: int = 0) -> dict[str, float]:
    """Random unit latents from standing (module docstring): {"held_survival", "switched_survival"} fractions and
    each mode's pose spread ("held_pose_spread_m", ...; :func:`pose_spread`)."""
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, float] = {}
    for mode in ("held", "switched"):
        def draw(k: int, obs: Tensor, z: Tensor | None, mode: str = mode) -> Tensor:
            if z is None or mode == "switched":
                return F.normalize(torch.randn(num, llc.latent_dim, generator=gen), dim=-1)
            return z

        r = rollout_latents(llc, lib, draw, num, seconds, llc_steps, seed)
        out[f"{mode}_survival"] = r.survival
        out.update({f"{mode}_{k}": v for k, v in r.spread().items()})
    out["num"] = float(num)
    out["seconds"] = float(seconds)
    return out


class UntrainedActor:
    """The actor of a freshly initialised π_H (rl-games' ``actor_critic`` with :class:`HLCNetworkSettings`, seed
    ``seed``): ``(obs (N, 223)) -> (mu (N, D), sigma (N, D))``. Its observation normaliser is the fresh one (mean 0,
    variance 1), as in π_H's first rollouts."""

    def __init__(self, latent_dim: int, obs_dim: int = 223, units: tuple[int, ...] | None = None, seed: int = 0):
        from rl_games.algos_torch.model_builder import ModelBuilder

        from anyskill.config import profile
        from anyskill.config.hlc import HLCNetworkSettings

        settings = HLCNetworkSettings(units=units) if units is not None else profile("laptop").hlc.network
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = ModelBuilder().load({"model": {"name": "continuous_a2c_logstd"},
                                              "network": settings.to_params()}).build({
                "actions_num": latent_dim, "input_shape": (obs_dim,), "num_seqs": 1, "value_size": 1,
                "normalize_input": True, "normalize_value": True})
        self.model.eval()

    @torch.no_grad()
    def __call__(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        mu, log_std, _, _ = self.model.a2c_network({"obs": self.model.norm_obs(obs.float().cpu())})
        return mu, log_std.exp()


def untrained_hlc_draw(num: int, latent_dim: int, mode: str, prior: Any = None, anchor_scale: float = 0.3,
                       policies: int = 4, seed: int = 0, units: tuple[int, ...] | None = None) -> LatentDraw:
    """Latents as ``policies`` freshly initialised π_H draw them (envs split evenly between them; mean + sigma
    noise), through the latent action ``mode`` (:func:`anyskill.llc.prior.latent_from_action`; ``prior`` (obs ->
    unit latents) for the anchored ones)."""
    from anyskill.llc.prior import latent_from_action

    if num < policies:
        raise ValueError(f"{num} characters cannot be split between {policies} untrained policies: use at least "
                         f"{policies}")
    actors = [UntrainedActor(latent_dim, units=units, seed=seed + 1000 + i) for i in range(policies)]
    owner = torch.arange(num) * policies // num
    gen = torch.Generator().manual_seed(seed)

    def draw(k: int, obs: Tensor, z: Tensor | None) -> Tensor:
        a = torch.zeros(num, latent_dim)
        for i, actor in enumerate(actors):
            mu, sigma = actor(obs[owner == i])
            a[owner == i] = mu + sigma * torch.randn(mu.shape, generator=gen)
        anchor = None
        if mode == "anchored" or (mode == "anchored_previous" and z is None):
            anchor = prior(obs).cpu()
        elif mode == "anchored_previous":
            anchor = z
        return latent_from_action(a, mode, anchor_scale, anchor)

    return draw


@torch.no_grad()
def untrained_hlc_rollouts(llc: Any, lib: MotionLibrary, prior: Any = None, num: int = 32, seconds: float = 10.0,
                           llc_steps: int = 5, seed: int = 0, anchor_scale: float | None = None,
                           modes: tuple[str, ...] = ("free", "anchored"), policies: int = 4,
                           units: tuple[int, ...] | None = None) -> dict[str, LatentRollout]:
    """One :func:`rollout_latents` per latent action of ``modes``, on the latents ``policies`` freshly initialised
    π_H draw (:func:`untrained_hlc_draw`, the same policies and noise for every mode). ``prior``: the controller's
    latent prior (default: fitted or read from the cache, :func:`anyskill.llc.prior.latent_prior`);
    ``anchor_scale`` default :data:`~anyskill.config.hlc.ANCHOR_SCALE`."""
    from anyskill.config.hlc import ANCHOR_SCALE

    scale = ANCHOR_SCALE if anchor_scale is None else anchor_scale
    if prior is None and any(m != "free" for m in modes):
        from anyskill.llc.prior import latent_prior

        prior = latent_prior(llc, lib)
    return {mode: rollout_latents(llc, lib, untrained_hlc_draw(num, llc.latent_dim, mode, prior, scale, policies,
                                                               seed, units), num, seconds, llc_steps, seed)
            for mode in modes}


@torch.no_grad()
def evaluate_untrained_hlc(llc: Any, lib: MotionLibrary, prior: Any = None, num: int = LATENT_CHECK_ENVS,
                           seconds: float = 10.0, llc_steps: int = 5, seed: int = 0, anchor_scale: float | None = None,
                           modes: tuple[str, ...] = ("free", "anchored"), policies: int = 4,
                           units: tuple[int, ...] | None = None) -> dict[str, Any]:
    """An untrained high-level policy's latents from standing (module docstring, :func:`untrained_hlc_rollouts`),
    per latent action of ``modes``: "<mode>_survival" (fraction that stays up) and "<mode>_pose_spread_m" (with its
    _time/_envs parts); beside them "library_pose_spread_m", the clips' own spread, and the settings."""
    from anyskill.config.hlc import ANCHOR_SCALE, INIT_LOG_STD

    scale = ANCHOR_SCALE if anchor_scale is None else anchor_scale
    out: dict[str, Any] = {}
    for mode, r in untrained_hlc_rollouts(llc, lib, prior, num, seconds, llc_steps, seed, scale, modes, policies,
                                          units).items():
        out[f"{mode}_survival"] = r.survival
        out.update({f"{mode}_{k}": v for k, v in r.spread().items()})
    out.update({"library_pose_spread_m": library_pose_spread(lib), "num": float(num), "seconds": float(seconds),
                "anchor_scale": scale, "init_log_std": INIT_LOG_STD, "policies": policies, "cadence": llc_steps})
    return out


ROBUSTNESS_COLUMNS = ("random_held", "random_switched", "hlc_free", "hlc_anchored")
"""The stay-up fractions of :func:`latent_robustness`, each against the goal of 90-95 % (issue 27)."""


@torch.no_grad()
def latent_robustness(llc: Any, lib: MotionLibrary, prior: Any, seeds: list[int], num: int = LATENT_CHECK_ENVS,
                      anchor_scale: float | None = None, seconds: float = 10.0) -> pd.DataFrame:
    """Random latents held and switched, and an untrained π_H's latents free and anchored (σ ``anchor_scale``), from
    standing, ``seconds``, ``num`` characters each, once per seed of ``seeds``: one row per seed with the stay-up
    fractions (:data:`ROBUSTNESS_COLUMNS`) and the pose spreads (m) of the held random and the anchored latents, so
    that a controller that survives by standing still shows."""
    rows = []
    for seed in seeds:
        r = evaluate_random_latents(llc, lib, num=num, seconds=seconds, seed=seed)
        h = evaluate_untrained_hlc(llc, lib, prior, num=num, seconds=seconds, seed=seed, anchor_scale=anchor_scale)
        rows.append({"seed": seed, "characters": num, "seconds": seconds, "anchor_scale": h["anchor_scale"],
                     "random_held": r["held_survival"], "random_switched": r["switched_survival"],
                     "hlc_free": h["free_survival"], "hlc_anchored": h["anchored_survival"],
                     "random_held_pose_spread_m": r["held_pose_spread_m"],
                     "hlc_anchored_pose_spread_m": h["anchored_pose_spread_m"]})
    return pd.DataFrame(rows)
