"""Evaluation of a low-level controller: does it imitate each clip from the clip's own latent?

For every clip of a manifest (all clips as parallel envs, :func:`evaluate_llc`):

1. z = E(the first 60-frame AMP window of the clip, ending at min(59 dt, duration));
2. the humanoid starts in the clip's first frame (reference state and a 10-frame AMP history of it);
3. the controller acts deterministically (mean action) on that fixed z for the clip's horizon
   min(``seconds``, max(duration, ``min_seconds``));
4. metrics over the steps before the first fall (the env's fall termination; no recovery episodes):
   ``survival_s`` (time of the fall, capped at the horizon), ``body_err_global_m`` (mean distance of the 15
   bodies to the reference clip's at the same time, world frame: grows with drift),
   ``body_err_local_m`` (the same on root-relative positions in each character's heading frame: pose
   imitation), ``disc_logit`` and ``style_reward`` (conditional discriminator on the agent's 10-frame AMP
   windows under z, once a window holds only simulated frames), beside ``demo_disc_logit`` /
   ``demo_style_reward`` (the clip's own windows at the same times, the discriminator's reference level).

The untrained baseline (``checkpoint=None`` or ``baseline=True``) is a freshly initialised controller of the
same size, so the table shows what training changed. Times after a clip's end compare to its last frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch

from anyskill.config import profile
from anyskill.humanoid import rotations as rot
from anyskill.humanoid.obs import policy_obs_size
from anyskill.llc.calm import losses
from anyskill.llc.controller import LowLevelController, load_llc

if TYPE_CHECKING:
    from anyskill.motion.library import MotionLibrary
    from anyskill.sim.env import HumanoidEnv

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------- controllers
def untrained_llc(like: Any = "laptop", seed: int = 0) -> Any:
    """A randomly initialised controller: the same networks as ``like`` (a controller, its ``config``
    dict, or a scale name "smoke" | "laptop" | "paper" for the bundled humanoid), weights drawn with ``seed``.
    For a distilled student (tracking route) the encoder keeps ``like``'s fixed frame statistics."""
    from anyskill.llc.tracking.student import StudentController

    if isinstance(like, StudentController):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            student = StudentController(like.config)
        student.net.frame_mean.copy_(like.net.frame_mean)
        student.net.frame_std.copy_(like.net.frame_std)
        for p in student.parameters():
            p.requires_grad_(False)
        return student.eval()
    if isinstance(like, LowLevelController):
        config = like.config
    elif isinstance(like, dict):
        config = like
    else:
        from anyskill.humanoid.model import load_humanoid

        model = load_humanoid()
        prof = profile(like).llc
        config = {"network": prof.network.to_params(), "obs_dim": policy_obs_size(model.num_bodies),
                  "actions_num": model.num_dofs, "normalize_input": True, "normalize_value": True,
                  "calm": asdict(prof.calm)}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        llc = LowLevelController(config)
    for p in llc.parameters():
        p.requires_grad_(False)
    return llc.eval()


@torch.no_grad()
def clip_latents(llc: LowLevelController, lib: MotionLibrary, clip_ids: Tensor, dt: float | None = None) -> Tensor:
    """(C, latent) each clip's latent: the encoding of its first window (the first 60 frames, ending at
    min(59 dt, duration)); ``dt`` s between frames (default: the controller's ``motion_dt``)."""
    dt = llc.motion_dt if dt is None else dt
    clip_ids = torch.as_tensor(clip_ids, device=lib.device)
    ends = lib.durations[clip_ids].clamp_max((llc.enc_steps - 1) * dt)
    return llc.encode(lib.amp_obs_window(clip_ids, ends, llc.enc_steps, dt))


def resolve_controller(checkpoint: str | Path | LowLevelController | None, seed: int) -> tuple[LowLevelController, str]:
    """(controller, label): a loaded checkpoint or controller ("trained"), or for None an untrained laptop-size one."""
    if checkpoint is None:
        return untrained_llc("laptop", seed), "untrained"
    if isinstance(checkpoint, torch.nn.Module):  # a CALM LowLevelController or a tracking-route StudentController
        return checkpoint.eval(), "trained"
    return load_llc(checkpoint), "trained"


# ---------------------------------------------------------------------------------------------- rollouts
@dataclass
class LLCRollout:
    """A deterministic rollout of H control steps in N envs (step k's entries are the state after it).

    body_pos (H, N, B, 3) m world; root_rot (H, N, 4) wxyz; amp_obs (H, N, disc_steps * F) the agent's AMP
    history; disc_logit (H, N); alive (H, N) bool, True until the env's first episode end (fall or
    time-out; the step that ends it and every later one are False); fallen (H, N) bool, the env's fall rule on
    the state reached by each step (reported also when early termination is off); fell (N,) bool, the end was a
    fall; survival_steps (N,) long, steps up to and including the one that ended the first episode (H if none).
    """

    body_pos: Tensor
    root_rot: Tensor
    amp_obs: Tensor
    disc_logit: Tensor
    alive: Tensor
    fallen: Tensor
    fell: Tensor
    survival_steps: Tensor


@torch.no_grad()
def rollout_llc(llc: LowLevelController, env: HumanoidEnv, z: Tensor, steps: int) -> LLCRollout:
    """Run ``llc`` deterministically on fixed latents ``z`` (N, latent) for ``steps`` control steps from the
    env's current state (after ``env.reset()`` or ``env.start_from_reference``)."""
    b = env.backend
    n = env.num_envs
    llc.reset_timing()
    obs = env.policy_observation()
    alive = torch.ones(n, dtype=torch.bool, device=env.device)
    fell = torch.zeros_like(alive)
    survival = torch.full((n,), steps, dtype=torch.long, device=env.device)
    out: dict[str, list[Tensor]] = {k: [] for k in ("body_pos", "root_rot", "amp_obs", "disc_logit", "alive",
                                                    "fallen")}
    for k in range(steps):
        obs_dict, _, done, extras = env.step(llc.act(obs, z))
        obs = obs_dict["obs"]
        amp = extras["amp_obs"]
        ended = done & alive
        fell |= ended & extras["terminate"]
        survival[ended] = k + 1
        alive = alive & ~done
        out["body_pos"].append(b.body_pos().clone())
        out["root_rot"].append(b.body_rot()[:, 0].clone())
        out["amp_obs"].append(amp)
        out["disc_logit"].append(llc.discriminator_score(amp, z))
        out["alive"].append(alive.clone())
        out["fallen"].append(extras["fallen"].clone())
    return LLCRollout(**{k: torch.stack(v) for k, v in out.items()}, fell=fell, survival_steps=survival)


def heading_local(body_pos: Tensor, root_rot: Tensor) -> Tensor:
    """(..., B, 3) body positions relative to the root, in the root's heading frame (yaw removed), m."""
    rel = body_pos - body_pos[..., :1, :]
    q = rot.heading_quat_inverse(root_rot)[..., None, :].expand(*rel.shape[:-1], 4)
    return rot.quat_rotate(q, rel)


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the first dim of (H, N) ``x`` where ``mask``; NaN where a column has no entry."""
    count = mask.sum(0)
    total = torch.where(mask, x, torch.zeros_like(x)).sum(0)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


@torch.no_grad()
def learning_signals(llc: LowLevelController, motion_lib: MotionLibrary, num_envs: int = 32, steps: int = 150,
                     num_demo: int = 512, seed: int = 0) -> dict[str, float]:
    """Held-out evidence that training worked, on fresh data drawn with ``seed``:

    * ``disc_accuracy``: balanced accuracy of the discriminator (logit > 0 means "demo") on ``num_demo``
      demo windows under their own encoder latents and on the agent's windows from the rollouts below
      (only windows made of simulated frames); ``disc_demo_accuracy`` / ``disc_agent_accuracy`` its halves;
    * ``mean_episode_s``: mean time to the first fall of ``num_envs`` humanoids started by the training
      env's hybrid init (clip states or the default pose), each on the latent of a random clip window,
      acting deterministically, capped at ``steps`` control steps.

    The same ``seed`` gives the same starts, latent windows and demo windows for every controller.
    """
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    env = HumanoidEnv(EnvConfig(num_envs=num_envs, state_init="hybrid", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None, seed=seed), motion_lib=motion_lib)
    env.reset()
    gen = torch.Generator(motion_lib.device).manual_seed(seed)
    _, _, windows = motion_lib.sample_amp_windows(num_envs, llc.enc_steps, env.dt, generator=gen)
    r = rollout_llc(llc, env, llc.encode(windows), steps)
    k = torch.arange(steps)[:, None]
    agent_logits = r.disc_logit[r.alive & (k >= llc.disc_steps - 1)]
    demo = motion_lib.sample_encoder_and_demo_windows(num_demo, llc.enc_steps, llc.disc_steps, env.dt, generator=gen)
    demo_logits = llc.discriminator_score(demo.demo_windows.reshape(num_demo, -1), llc.encode(demo.enc_windows))
    agent_acc = float((agent_logits < 0).float().mean()) if agent_logits.numel() else float("nan")
    demo_acc = float((demo_logits > 0).float().mean())
    return {
        "disc_accuracy": 0.5 * (agent_acc + demo_acc),
        "disc_demo_accuracy": demo_acc,
        "disc_agent_accuracy": agent_acc,
        "agent_windows": int(agent_logits.numel()),
        "mean_episode_s": float(r.survival_steps.float().mean()) * env.dt,
    }


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate_llc(
    checkpoint: str | Path | LowLevelController | None,
    motions: str | Path | None = None,
    seconds: float = 5.0,
    min_seconds: float = 2.0,
    seed: int = 0,
    baseline: bool = False,
    motion_lib: MotionLibrary | None = None,
) -> pd.DataFrame:
    """Per-clip imitation metrics of a controller (module docstring); one row per clip.

    Args:
        checkpoint: a CALM checkpoint, a loaded controller, or None for an untrained ``laptop``-size one.
        motions: manifest (default: the bundled one); ignored when ``motion_lib`` is given.
        seconds: longest horizon per clip, s; ``min_seconds``: shortest (short clips hold their last frame).
        seed: env seed and the untrained controllers' init seed.
        baseline: also evaluate an untrained controller of the same size (rows with controller "untrained").
        motion_lib: an already built library (skips loading ``motions``).

    Columns: controller, clip, category, duration_s, horizon_s, survival_s, fell, body_err_global_m,
    body_err_local_m, disc_logit, style_reward, demo_disc_logit, demo_style_reward.
    """
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    if seconds <= 0 or min_seconds <= 0:
        raise ValueError(f"seconds and min_seconds must be > 0, got {seconds}, {min_seconds}")
    if motion_lib is None:
        from anyskill.llc.motions import load_motions

        motion_lib, _ = load_motions(motions)
    lib = motion_lib
    llc, label = resolve_controller(checkpoint, seed)
    controllers = [(llc, label)]
    if baseline and label == "trained":
        controllers.append((untrained_llc(llc, seed), "untrained"))

    c = lib.num_clips
    ids = torch.arange(c, device=lib.device)
    env = HumanoidEnv(EnvConfig(num_envs=c, state_init="start", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None, seed=seed), motion_lib=lib)
    dt = env.dt
    durations = lib.durations
    horizon = (torch.minimum(torch.full_like(durations, seconds), durations.clamp_min(min_seconds)) / dt).round().long()
    steps = int(horizon.max())
    k = torch.arange(steps, device=lib.device)
    in_horizon = k[:, None] < horizon[None, :]  # (H, C)
    times = ((k + 1) * dt)[:, None].expand(steps, c)  # time of the state after step k
    ref = lib.state_at(ids.repeat(steps), times.reshape(-1))
    ref_pos = ref.body_pos.reshape(steps, c, -1, 3)
    ref_local = heading_local(ref_pos, ref.root_rot.reshape(steps, c, 4))

    rows = []
    for controller, name in controllers:
        z = clip_latents(controller, lib, ids, dt)
        env.start_from_reference(torch.arange(c), ids, torch.zeros(c, device=lib.device))
        r = rollout_llc(controller, env, z, steps)
        valid = r.alive & in_horizon
        scored = valid & (k[:, None] >= controller.disc_steps - 1)  # windows made of simulated frames only
        err_global = (r.body_pos - ref_pos).norm(dim=-1).mean(-1)
        err_local = (heading_local(r.body_pos, r.root_rot) - ref_local).norm(dim=-1)[..., 1:].mean(-1)
        scale = controller.disc_reward_scale
        demo = lib.amp_obs_window(ids.repeat(steps), times.reshape(-1), controller.disc_steps, dt)
        demo_logit = controller.discriminator_score(demo.reshape(steps * c, -1), z.repeat(steps, 1)).reshape(steps, c)
        survival = torch.minimum(r.survival_steps, horizon)
        metrics = {
            "survival_s": survival.float() * dt,
            "fell": r.fell & (r.survival_steps <= horizon),
            "body_err_global_m": _masked_mean(err_global, valid),
            "body_err_local_m": _masked_mean(err_local, valid),
            "disc_logit": _masked_mean(r.disc_logit, scored),
            "style_reward": _masked_mean(losses.style_reward(r.disc_logit, scale), scored),
            "demo_disc_logit": _masked_mean(demo_logit, in_horizon),
            "demo_style_reward": _masked_mean(losses.style_reward(demo_logit, scale), in_horizon),
        }
        for i in range(c):
            row = {"controller": name, "clip": lib.clip_names[i], "category": lib.categories[i],
                   "duration_s": round(float(durations[i]), 3), "horizon_s": round(float(horizon[i]) * dt, 3)}
            row.update({key: (bool(v[i]) if v.dtype == torch.bool else float(v[i])) for key, v in metrics.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Mean of every metric per controller (one row each), with the fraction of clips where it fell."""
    cols = ["survival_s", "fell", "body_err_global_m", "body_err_local_m", "disc_logit", "style_reward",
            "demo_disc_logit"]
    out = df.assign(fell=df["fell"].astype(float)).groupby("controller", sort=False)[cols].mean()
    return out.rename(columns={"fell": "fell_fraction"}).reset_index()
