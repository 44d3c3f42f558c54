"""The tracker π_T(a | s, reference) trained by PPO on :class:`~anyskill.llc.tracking.TrackingEnv` (CPU route, stage 1).

A CleanRL-style PPO with every hyper-parameter in :class:`TrackerPPOConfig`: Gaussian policy with a fixed standard
deviation around an MLP mean whose output layer starts at zero (so the untrained tracker replays the reference
through the PD loop), a separate MLP critic, running observation normalisation, GAE, time-outs bootstrapped with
V(s_T), shuffled minibatches. Checkpoints hold everything needed to resume exactly where the run stopped (weights,
normaliser, optimiser, environment generator states are not kept: a resumed run draws new episodes).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anyskill.config.tracking import TrackerPPOConfig, TrackingConfig
from anyskill.llc import distributed as ddp
from anyskill.llc.nets import RunningNorm, mlp
from anyskill.llc.tracking.env import TrackingEnv
from anyskill.motion.library import MotionLibrary


class Tracker(nn.Module):
    """Actor-critic of the tracker: ``act(obs) -> residual action mean (N, D)`` on raw observations."""

    def __init__(self, obs_dim: int, act_dim: int, actor_units: tuple[int, ...], critic_units: tuple[int, ...]):
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.actor_units, self.critic_units = tuple(actor_units), tuple(critic_units)
        self.norm = RunningNorm(obs_dim)
        self.actor = mlp([obs_dim, *actor_units, act_dim], out_scale=1e-3)
        self.critic = mlp([obs_dim, *critic_units, 1])

    def act(self, obs: Tensor) -> Tensor:
        return self.actor(self.norm(obs))

    def value(self, obs: Tensor) -> Tensor:
        return self.critic(self.norm(obs)).squeeze(-1)

    def config(self) -> dict[str, Any]:
        return {"obs_dim": self.obs_dim, "act_dim": self.act_dim, "actor_units": self.actor_units,
                "critic_units": self.critic_units}


def load_tracker(path: str | Path) -> tuple[Tracker, TrackingConfig]:
    """A tracker checkpoint (:func:`train_tracker`) -> (frozen tracker, the tracking settings it was trained on)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "tracker" not in ckpt:
        raise ValueError(f"{path} is not a tracker checkpoint (no 'tracker' entry); train one with train_tracker")
    c = ckpt["tracker_config"]
    net = Tracker(c["obs_dim"], c["act_dim"], tuple(c["actor_units"]), tuple(c["critic_units"]))
    net.load_state_dict(ckpt["tracker"])
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, TrackingConfig(**ckpt["tracking"])


@dataclass
class TrackerRun:
    """Result of :func:`train_tracker`: final checkpoint path, curve rows (one per iteration), samples."""

    checkpoint: Path
    curve: list[dict] = field(default_factory=list)
    samples: int = 0
    wall_s: float = 0.0


def _schedule(start: float, end: float, frac: float) -> float:
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * min(max(frac, 0.0), 1.0)))


def train_tracker(lib: MotionLibrary, out_dir: str | Path, track: TrackingConfig | None = None,
                  ppo: TrackerPPOConfig | None = None, resume: str | Path | None = None,
                  time_budget_s: float | None = None, seed: int = 0, progress: bool = True,
                  evaluate: Callable[[Tracker, int], dict] | None = None, log_every: int = 0,
                  initial: Tracker | None = None,
                  on_iteration: Callable[[Tracker, dict], None] | None = None) -> TrackerRun:
    """Train (or continue) a tracker on every clip of ``lib``; writes ``out_dir/tracker.pth`` (+ ``curve.csv``).

    ``initial``: a tracker of the same sizes whose weights start the run (fine-tuning); otherwise the actor's output
    starts at zero (the reference replayed). Stops at ``ppo.total_samples`` or after ``time_budget_s`` s of wall
    time (after the running iteration), with a checkpoint. ``evaluate(tracker, samples) -> dict`` is called every
    ``ppo.eval_every_iters`` iterations and its values go into the curve.

    Data-parallel under torchrun (:mod:`anyskill.llc.distributed`): each process runs ``track.num_envs`` worlds
    seeded ``seed + rank``; gradients, the observation normaliser, the KL of the adaptive learning rate, the clips'
    failure rates and the logged statistics are averaged over the processes; samples count all processes (so
    ``ppo.total_samples`` is the total, and a checkpoint resumes with any number of processes); rank 0 writes the
    checkpoint and the curve and runs ``evaluate``. ``on_iteration(tracker, row)`` runs on every process after every
    iteration (monitors, tests).
    """
    from tqdm.auto import tqdm

    track = track or TrackingConfig(seed=seed)
    ppo = ppo or TrackerPPOConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(ddp.rank_seed(seed))  # data-parallel (issue 29): each process its own worlds and draws
    env = TrackingEnv(TrackingConfig(**{**asdict(track), "seed": ddp.rank_seed(track.seed)}), lib)
    dev = env.device
    net = Tracker(env.num_obs, env.num_actions, ppo.actor_units, ppo.critic_units).to(dev)
    if initial is not None:
        net.load_state_dict(initial.state_dict())
    main, procs = ddp.is_main(), ddp.world_size()  # data-parallel: rank 0 writes; samples count every process
    opt = torch.optim.Adam(list(net.actor.parameters()), lr=ppo.lr)
    opt_v = torch.optim.Adam(list(net.critic.parameters()), lr=ppo.critic_lr)
    samples, it, curve = 0, 0, []
    lr = ppo.lr
    if resume is not None:
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["tracker"])
        lr = float(ckpt.get("lr", lr))
        if "optimizer" in ckpt:  # a shipped tracker has none: Adam starts afresh
            opt.load_state_dict(ckpt["optimizer"])
            opt_v.load_state_dict(ckpt["critic_optimizer"])
        samples, it, curve = int(ckpt["samples"]), int(ckpt["iteration"]), list(ckpt.get("curve", []))
        env.fail_rate.copy_(ckpt["fail_rate"])
    ddp.broadcast_module(net)  # data-parallel: every process starts from rank 0's weights
    n, t_len = env.num_envs, ppo.horizon
    obs = env.reset()
    start = time.time()
    last_ckpt = start
    path = out / "tracker.pth"

    def save(target: Path) -> None:
        tmp = target.with_suffix(".tmp")
        torch.save({"tracker": {k: v.cpu() for k, v in net.state_dict().items()}, "tracker_config": net.config(),
                    "tracking": asdict(track), "ppo": asdict(ppo), "optimizer": opt.state_dict(),
                    "critic_optimizer": opt_v.state_dict(), "samples": samples, "iteration": it,
                    "curve": curve, "fail_rate": env.fail_rate.cpu().clone(), "seed": seed, "lr": lr}, tmp)
        tmp.replace(target)

    bar = tqdm(total=ppo.total_samples, initial=samples, unit="samples", disable=not (progress and main),
               desc="tracker")
    buf_obs = torch.zeros(t_len, n, env.num_obs, device=dev)
    buf_act = torch.zeros(t_len, n, env.num_actions, device=dev)
    buf_logp = torch.zeros(t_len, n, device=dev)
    buf_rew = torch.zeros(t_len, n, device=dev)
    buf_done = torch.zeros(t_len, n, device=dev)
    buf_val = torch.zeros(t_len + 1, n, device=dev)
    while samples < ppo.total_samples:
        frac = samples / ppo.total_samples
        std = _schedule(ppo.action_std, ppo.action_std_final, frac)
        t0 = time.time()
        # running sums stay on the device: one host synchronisation per iteration, not per step
        stats = torch.zeros(5, device=dev)  # reward, body error, local error, terminations, episodes
        with torch.no_grad():
            for t in range(t_len):
                mean = net.act(obs)
                a = mean + std * torch.randn_like(mean)
                buf_obs[t], buf_act[t] = obs, a
                buf_logp[t] = -((a - mean) ** 2).sum(-1) / (2 * std * std)
                buf_val[t] = net.value(obs)
                obs, rew, done, info = env.step(a)
                timeout = info["time_out"]
                if env.maybe(timeout):  # bootstrap time-outs with V(s_T)
                    rew = rew + ppo.gamma * torch.where(timeout, net.value(info["terminal_obs"]), 0.0)
                buf_rew[t], buf_done[t] = rew, done.float()
                stats += torch.stack([rew.mean(), info["body_error_m"].mean(), info["local_error_m"].mean(),
                                      info["terminate"].sum().float(), done.sum().float()])
            buf_val[t_len] = net.value(obs)
            adv = torch.zeros(t_len, n, device=dev)
            last = torch.zeros(n, device=dev)
            for t in reversed(range(t_len)):
                nonterminal = 1.0 - buf_done[t]
                delta = buf_rew[t] + ppo.gamma * buf_val[t + 1] * nonterminal - buf_val[t]
                last = delta + ppo.gamma * ppo.lam * nonterminal * last
                adv[t] = last
            ret = adv + buf_val[:t_len]
        t_sim = time.time() - t0
        b_obs, b_act = buf_obs.reshape(-1, env.num_obs), buf_act.reshape(-1, env.num_actions)
        b_logp, b_adv, b_ret = buf_logp.reshape(-1), adv.reshape(-1), ret.reshape(-1)
        total = b_obs.shape[0]
        clipped = torch.zeros((), device=dev)
        torch.set_num_threads(ppo.learn_threads)  # the simulator's threads are idle while the networks learn
        for _ in range(ppo.epochs):
            kl_sum = torch.zeros((), device=dev)
            kl_n = 0
            perm = torch.randperm(total, device=dev)
            for i in range(0, total, ppo.minibatch):
                mb = perm[i:i + ppo.minibatch]
                mean = net.act(b_obs[mb])
                logp = -((b_act[mb] - mean) ** 2).sum(-1) / (2 * std * std)
                ratio = torch.exp(logp - b_logp[mb])
                a_mb = b_adv[mb]
                a_mb = (a_mb - a_mb.mean()) / (a_mb.std() + 1e-8)
                pg = -torch.min(ratio * a_mb, ratio.clamp(1 - ppo.clip, 1 + ppo.clip) * a_mb).mean()
                v_loss = (net.value(b_obs[mb]) - b_ret[mb]).square().mean()
                opt.zero_grad(set_to_none=True)
                opt_v.zero_grad(set_to_none=True)
                (pg + v_loss).backward()
                ddp.sync_gradients(net)  # data-parallel: the mean gradient of every process's minibatch
                nn.utils.clip_grad_norm_(net.actor.parameters(), ppo.max_grad_norm)
                nn.utils.clip_grad_norm_(net.critic.parameters(), ppo.max_grad_norm)
                opt.step()
                opt_v.step()
                clipped += ((ratio - 1).abs() > ppo.clip).float().mean().detach()
                kl_sum += (b_logp[mb] - logp.detach()).mean()
                kl_n += 1
            # one synchronisation per epoch: the adaptive learning rate needs it (data-parallel: the mean KL)
            kl = float(ddp.all_reduce_mean(kl_sum)) / kl_n
            lr = min(lr * 1.5, ppo.lr_max) if kl < 0.5 * ppo.kl_target else lr
            lr = max(lr / 1.5, ppo.lr_min) if kl > 2.0 * ppo.kl_target else lr
            for g in opt.param_groups:
                g["lr"] = lr
        torch.set_num_threads(1)
        clipfrac = float(ddp.all_reduce_mean(clipped))  # data-parallel: statistics averaged over the processes
        st = ddp.all_reduce_mean(stats).tolist()
        # after the update: the rollout and the PPO ratios saw the same normaliser (data-parallel: every batch)
        ddp.update_norm(net.norm, b_obs)
        env.fail_rate = ddp.all_reduce_mean(env.fail_rate)  # data-parallel: one failure weighting everywhere
        samples += total * procs
        it += 1
        wall = time.time() - t0
        row = {"iteration": it, "samples": samples, "time": time.time(), "lr": lr, "kl": kl, "std": std,
               "reward": st[0] / t_len,
               "body_error_m": st[1] / t_len, "local_error_m": st[2] / t_len,
               "terminations_per_step": st[3] / (t_len * n), "samples_per_s": total * procs / wall,
               "sim_fraction": t_sim / wall, "clipfrac": clipfrac / (ppo.epochs * math.ceil(total / ppo.minibatch))}
        if main and evaluate is not None and ppo.eval_every_iters and it % ppo.eval_every_iters == 0:
            net.eval()
            row.update(evaluate(net, samples))
            net.train()
        curve.append(row)
        if on_iteration is not None:
            on_iteration(net, row)
        if main and log_every and it % log_every == 0:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        bar.update(total * procs)
        bar.set_postfix(rew=f"{row['reward']:.3f}", err=f"{row['local_error_m']:.3f}",
                        sps=f"{row['samples_per_s']:.0f}")
        if main and time.time() - last_ckpt > ppo.checkpoint_every_s:
            save(path)
            last_ckpt = time.time()
        if ddp.broadcast_flag(time_budget_s is not None and time.time() - start > time_budget_s):  # rank 0's clock
            break
    bar.close()
    if main:
        save(path)
        _write_curve(out / "tracker_curve.csv", curve)
    ddp.barrier()  # data-parallel: the checkpoint is there for every process
    return TrackerRun(checkpoint=path, curve=curve, samples=samples, wall_s=time.time() - start)


def _write_curve(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)


@torch.no_grad()
def evaluate_tracker(tracker: Tracker, lib: MotionLibrary, track: TrackingConfig, standing: bool = False,
                     min_seconds: float = 3.0, seed: int = 0) -> dict[str, Any]:
    """Each clip tracked once on MuJoCo C (the CPU), deterministically, from its first frame (``standing``: from the
    standing pose, blending in) for max(duration, ``min_seconds``) s, looping; a fall is the env's fall rule.

    Returns {"per_clip": [{clip, finished, fall_time_s, local_error_m, body_error_m}], "finished": fraction,
    "local_error_m": mean over clips of the error before any fall}."""
    from anyskill.sim import terms

    c = lib.num_clips
    cfg = TrackingConfig(**{**asdict(track), "num_envs": c, "episode_length": 10**9, "termination_error_m": 1e9,
                            "failure_weighting": 0.0, "seed": seed, "device": "cpu", "backend": "mujoco"})
    if next(tracker.parameters()).device.type != "cpu":  # evaluated on MuJoCo C: a copy on the CPU
        tracker = copy.deepcopy(tracker).cpu()
    env = TrackingEnv(cfg, lib)
    env.reset()
    ids = torch.arange(c)
    env.reset_envs(ids, clips=ids, standing=torch.full((c,), standing), k0=torch.zeros(c, dtype=torch.long))
    env.step_offset.zero_()
    env._ref = env.reference(list(range(1, cfg.future_frames + 1)))
    obs = env.observation()
    horizon = (lib.durations.cpu().clamp_min(min_seconds) / env.dt).round().long() + (cfg.blend_steps if standing
                                                                                          else 0)
    h = int(horizon.max())
    alive = torch.ones(c, dtype=torch.bool)
    fall_step = torch.full((c,), -1)
    err_l, err_g, count = torch.zeros(c), torch.zeros(c), torch.zeros(c)
    heights = terms.termination_heights(env.model, 0.15)
    fall_bodies = terms.non_contact_body_mask(env.model)
    for k in range(h):
        obs, _, _, info = env.step(tracker.act(obs))
        b = env.env.backend
        fallen = terms.has_fallen(b.body_contact_force(), b.body_pos()[..., 2], heights, fall_bodies,
                                  torch.full((c,), k + 1))
        in_h = k < horizon
        newly = alive & fallen & in_h
        fall_step = torch.where(newly, torch.full_like(fall_step, k + 1), fall_step)
        alive &= ~newly
        live = alive & in_h
        err_l += info["local_error_m"] * live
        err_g += info["body_error_m"] * live
        count += live.float()
    finished = fall_step < 0
    local = err_l / count.clamp_min(1)
    rows = [{"clip": lib.clip_names[i], "finished": bool(finished[i]),
             "fall_time_s": float(fall_step[i]) * env.dt if fall_step[i] >= 0 else float("nan"),
             "local_error_m": float(local[i]), "body_error_m": float(err_g[i] / count[i].clamp_min(1))}
            for i in range(c)]
    return {"per_clip": rows, "finished": float(finished.float().mean()), "local_error_m": float(local.mean())}
