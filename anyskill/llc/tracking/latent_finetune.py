"""An RL fine-tune of a distilled π_L on the latents a high-level policy sends (issue 27, build step 2's last resort).

Distillation teaches the student what the tracker does for a latent; where the tracker's label is a motion the
student cannot reproduce from its own state, the student falls. This stage lets π_L learn to stay up on exactly the
latents an exploring high-level policy sends, on the env the high-level policy uses (:class:`~anyskill.sim.env.
HumanoidEnv`, its fall rule), while a KL term keeps it near the distilled policy so that every latent keeps the
motion it had:

* **Policy**: Gaussian, mean = the student's π_L(s, z, τ) (its observation normaliser and its encoder stay frozen),
  fixed std ``action_std`` (env action units). A separate critic V(s, z, τ) learns from scratch (alone for the first
  ``critic_warmup_iters`` iterations).
* **Reward**: 1 per control step; a fall (the env's rule) ends the episode, time-outs bootstrap with V. So the return
  is the discounted time still standing.
* **Loss**: PPO's clipped surrogate + ``anchor_coef`` · KL(π_θ || π_0) with π_0 the distilled policy at the start of
  the stage (same std: |μ_θ - μ_0|² / (2 std²)), on every visited state; the adaptive learning rate of the tracker's
  PPO (KL per epoch near ``kl_target``).
* **Latents per episode** (:class:`~anyskill.config.tracking.LatentFinetuneConfig`): one random unit latent held
  to the end; random unit latents redrawn every ``llc_steps`` steps (the high-level cadence); redrawn after
  U[llc_steps, max_switch_steps] steps; or the encoder's latent of a clip window held (the skills). τ counts the
  control steps since the env's latent changed, as :class:`~anyskill.llc.tracking.student.StudentController` does.
  Episodes start standing, or (``clip_start_prob``) in a clip's state at a random time.

A fine-tune can continue another with other settings (``student_ckpt`` a fine-tune's ``llc.pth``): π_0 stays the
distilled policy, the critic goes on, and the earlier parts are recorded in ``finetune_phases``.

Resumable: the checkpoint is a student checkpoint (:func:`anyskill.llc.load_llc` loads it) that also holds the
critic, both optimisers, π_0's weights and the curve. The curve (``latent_finetune_curve.csv``) has the falls per
env-step of each latent regime, the anchor's KL and the throughput.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anyskill.config.tracking import DistillConfig, LatentFinetuneConfig
from anyskill.llc.nets import mlp
from anyskill.llc.tracking.distill import encode_bank
from anyskill.llc.tracking.student import StudentNetworks, save_student
from anyskill.motion.frame_grid import AmpFrameGrid
from anyskill.motion.library import MotionLibrary

HELD_RANDOM, CADENCE_RANDOM, INTERVAL_RANDOM, CLIP = 0, 1, 2, 3
"""Latent regimes of an episode (module docstring)."""
FINETUNE_REGIMES = ("held_random", "cadence_random", "interval_random", "clip")
"""Their names, in that order (the curve's ``falls_<name>``)."""


@dataclass
class LatentFinetuneRun:
    checkpoint: Path
    curve: list[dict] = field(default_factory=list)
    samples: int = 0
    wall_s: float = 0.0


class LatentCritic(nn.Module):
    """V(s, z, τ) on the student's normalised observation (N, obs), latent (N, D) and τ / timing_horizon (N, 1)."""

    def __init__(self, obs_dim: int, latent_dim: int, units: tuple[int, ...]):
        super().__init__()
        self.units = tuple(units)
        self.net = mlp([obs_dim + latent_dim + 1, *units, 1])

    def forward(self, obs_n: Tensor, z: Tensor, t: Tensor) -> Tensor:
        return self.net(torch.cat([obs_n, z, t], -1)).squeeze(-1)


def draw_finetune_regimes(cfg: LatentFinetuneConfig, n: int, gen: torch.Generator) -> Tensor:
    """(n,) regimes drawn with probabilities held_random_prob, cadence_random_prob, interval_random_prob, else CLIP."""
    edges = torch.tensor([cfg.held_random_prob, cfg.held_random_prob + cfg.cadence_random_prob,
                          cfg.held_random_prob + cfg.cadence_random_prob + cfg.interval_random_prob])
    return torch.bucketize(torch.rand(n, generator=gen), edges, right=True)


def next_switch(cfg: LatentFinetuneConfig, regime: Tensor, gen: torch.Generator) -> Tensor:
    """(N,) control steps until each env's latent changes: ``llc_steps`` (CADENCE_RANDOM), U[llc_steps,
    max_switch_steps] (INTERVAL_RANDOM), never (HELD_RANDOM, CLIP)."""
    span = torch.randint(cfg.llc_steps, cfg.max_switch_steps + 1, regime.shape, generator=gen)
    never = torch.full_like(span, torch.iinfo(torch.long).max)
    return torch.where(regime == CADENCE_RANDOM, cfg.llc_steps, torch.where(regime == INTERVAL_RANDOM, span, never))


def curve_wall_s(curve: list[dict]) -> float:
    """Seconds of training in a fine-tune's curve rows (each iteration's samples over its samples per second)."""
    done, wall = 0, 0.0
    for row in curve:
        wall += (int(row["samples"]) - done) / float(row["samples_per_s"])
        done = int(row["samples"])
    return wall


def _timing(net: StudentNetworks, tau: Tensor) -> Tensor:
    h = float(net.cfg["timing_horizon"])
    return (tau.float().clamp(max=h) / h)[:, None]


def latent_finetune(lib: MotionLibrary, student_ckpt: str | Path, out_dir: str | Path,
                    cfg: LatentFinetuneConfig | None = None, resume: bool = True,
                    time_budget_s: float | None = None, seed: int = 0, progress: bool = True,
                    log_every: int = 0) -> LatentFinetuneRun:
    """Fine-tune the student of ``student_ckpt`` (a tracking-route ``llc.pth``) by PPO on survival (module docstring)
    into ``out_dir/llc.pth`` (a controller for :func:`anyskill.llc.load_llc`) and
    ``out_dir/latent_finetune_curve.csv``. With ``resume`` an existing ``out_dir/llc.pth`` of this stage is
    continued (its samples count towards ``cfg.total_samples``). Stops at ``cfg.total_samples``, after
    ``time_budget_s`` s, or when a file ``out_dir/STOP`` appears (after the running iteration; the file is removed),
    with a checkpoint and the curve."""
    from tqdm.auto import tqdm

    from anyskill.sim.env import EnvConfig, HumanoidEnv

    cfg = cfg or LatentFinetuneConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "llc.pth"
    src = torch.load(student_ckpt, map_location="cpu", weights_only=False)
    if "student" not in src:
        raise ValueError(f"{student_ckpt} is not a tracking-route student checkpoint (no 'student' entry)")
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    net = StudentNetworks(src["student_config"]["student"])
    net.load_state_dict(src["student"])
    state: dict[str, Any] = {}
    if resume and path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=False)
        if "latent_finetune" not in state:
            raise ValueError(f"{path} exists but is not a latent fine-tune checkpoint; choose another out_dir")
        net.load_state_dict(state["student"])
    anchor = StudentNetworks(net.cfg)
    anchor.load_state_dict(state.get("anchor_student", src.get("anchor_student", src["student"])))
    for p in [*anchor.parameters(), *net.encoder.parameters()]:
        p.requires_grad_(False)
    obs_dim, latent_dim, act_dim = int(net.cfg["obs_dim"]), int(net.cfg["latent_dim"]), int(net.cfg["actions_num"])
    critic = LatentCritic(obs_dim, latent_dim, cfg.critic_units)
    if "critic" in src and tuple(src["latent_finetune"]["critic_units"]) == tuple(cfg.critic_units):
        critic.load_state_dict(src["critic"])  # a fine-tune continued with other settings: its critic goes on
    opt = torch.optim.Adam(net.policy.parameters(), lr=cfg.lr)
    opt_v = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
    samples, it, curve, lr = 0, 0, [], cfg.lr
    if state:
        critic.load_state_dict(state["critic"])
        opt.load_state_dict(state["optimizer"])
        opt_v.load_state_dict(state["critic_optimizer"])
        samples, it, curve = int(state["samples"]), int(state["iteration"]), list(state["curve"])
        lr = float(state["lr"])

    n = cfg.num_envs
    env = HumanoidEnv(EnvConfig(num_envs=n, state_init="hybrid", hybrid_init_prob=cfg.clip_start_prob,
                                fall_init_prob=0.0, recovery_episode_prob=0.0, episode_length=cfg.episode_length,
                                num_threads=cfg.num_threads, seed=seed + it), motion_lib=lib)
    if env.num_obs != obs_dim or env.num_actions != act_dim:
        raise ValueError(f"the student expects obs {obs_dim} and actions {act_dim}; the env has {env.num_obs} and "
                         f"{env.num_actions}")
    gen = torch.Generator().manual_seed(seed + 7 + it)
    grid = AmpFrameGrid.from_library(lib, env.dt).to("cpu")
    with torch.no_grad():
        bank = encode_bank(net, grid, DistillConfig(enc_steps=int(net.cfg["enc_steps"])))
    row_weights = grid.weights[grid.clip_of] / grid.clip_len[grid.clip_of]  # (G,) windows drawn as the clips are

    def new_latents(regime: Tensor) -> Tensor:
        rand = F.normalize(torch.randn(len(regime), latent_dim, generator=gen), dim=-1)
        clip = bank[torch.multinomial(row_weights, len(regime), replacement=True, generator=gen)]
        return torch.where((regime == CLIP)[:, None], clip, rand)

    obs = env.reset()["obs"]
    regime = draw_finetune_regimes(cfg, n, gen)
    z = new_latents(regime)
    tau = torch.zeros(n, dtype=torch.long)
    due = next_switch(cfg, regime, gen)
    extra = {k: src[k] for k in ("tracking", "distill") if k in src}
    phases = list(src.get("finetune_phases", []))
    if "latent_finetune" in src:  # the source is itself a fine-tune: its part is recorded before this one
        phases.append({"settings": src["latent_finetune"], "samples": int(src["samples"]),
                       "wall_s": curve_wall_s(src["curve"]), "checkpoint": str(student_ckpt)})

    def save(target: Path) -> None:
        save_student(target, net, **extra, latent_finetune=asdict(cfg), finetune_phases=phases,
                     finetuned_from=src.get("finetuned_from", str(student_ckpt)),
                     anchor_student={k: v.cpu() for k, v in anchor.state_dict().items()},
                     critic=critic.state_dict(), optimizer=opt.state_dict(), critic_optimizer=opt_v.state_dict(),
                     samples=samples, iteration=it, curve=curve, lr=lr, seed=seed)

    t_len, std = cfg.horizon, cfg.action_std
    buf_obs = torch.zeros(t_len, n, obs_dim)
    buf_z = torch.zeros(t_len, n, latent_dim)
    buf_t = torch.zeros(t_len, n, 1)
    buf_act = torch.zeros(t_len, n, act_dim)
    buf_mu0 = torch.zeros(t_len, n, act_dim)
    buf_logp = torch.zeros(t_len, n)
    buf_rew = torch.zeros(t_len, n)
    buf_done = torch.zeros(t_len, n)
    buf_val = torch.zeros(t_len + 1, n)
    start = time.time()
    last_ckpt = start
    bar = tqdm(total=cfg.total_samples, initial=samples, unit="samples", disable=not progress, desc="latent fine-tune")
    while samples < cfg.total_samples:
        t0 = time.time()
        falls = torch.zeros(len(FINETUNE_REGIMES))
        steps = torch.zeros(len(FINETUNE_REGIMES))
        net.eval()
        with torch.no_grad():
            for t in range(t_len):
                obs_n = net.obs_norm(obs)
                tt = _timing(net, tau)
                mean = net.policy(torch.cat([obs_n, z, tt], -1))
                a = mean + std * torch.randn(mean.shape, generator=gen)
                buf_obs[t], buf_z[t], buf_t[t], buf_act[t] = obs_n, z, tt, a
                buf_mu0[t] = anchor.policy(torch.cat([obs_n, z, tt], -1))
                buf_logp[t] = -((a - mean) ** 2).sum(-1) / (2 * std * std)
                buf_val[t] = critic(obs_n, z, tt)
                obs_d, _, done, info = env.step(a)
                obs = obs_d["obs"]
                rew = torch.ones(n)
                timeout = info["time_outs"]
                if timeout.any():  # bootstrap time-outs with V(s_T) under the latent that was acting
                    v_t = critic(net.obs_norm(info["terminal_obs"]), z, _timing(net, tau + 1))
                    rew = rew + cfg.gamma * torch.where(timeout, v_t, 0.0)
                buf_rew[t], buf_done[t] = rew, done.float()
                one_hot = F.one_hot(regime, len(FINETUNE_REGIMES)).float()
                falls += info["terminate"].float() @ one_hot
                steps += one_hot.sum(0)
                tau += 1
                regime = torch.where(done, draw_finetune_regimes(cfg, n, gen), regime)
                switch = done | (tau >= due)
                if switch.any():
                    z = torch.where(switch[:, None], new_latents(regime), z)
                    tau = torch.where(switch, 0, tau)
                    due = torch.where(switch, next_switch(cfg, regime, gen), due)
            buf_val[t_len] = critic(net.obs_norm(obs), z, _timing(net, tau))
            adv = torch.zeros(t_len, n)
            last = torch.zeros(n)
            for t in reversed(range(t_len)):
                nonterminal = 1.0 - buf_done[t]
                delta = buf_rew[t] + cfg.gamma * buf_val[t + 1] * nonterminal - buf_val[t]
                last = delta + cfg.gamma * cfg.lam * nonterminal * last
                adv[t] = last
            ret = adv + buf_val[:t_len]
        t_sim = time.time() - t0
        net.train()
        flat = lambda x: x.reshape(t_len * n, *x.shape[2:])  # noqa: E731
        b_obs, b_z, b_t, b_act, b_mu0 = flat(buf_obs), flat(buf_z), flat(buf_t), flat(buf_act), flat(buf_mu0)
        b_logp, b_adv, b_ret = flat(buf_logp), flat(adv), flat(ret)
        total = t_len * n
        learn_actor = it >= cfg.critic_warmup_iters
        torch.set_num_threads(cfg.learn_threads)
        sums = torch.zeros(4)  # policy loss, anchor KL, value loss, clipped fraction
        count = 0
        kl = 0.0
        for _ in range(cfg.epochs):
            kl_sum, kl_n = 0.0, 0
            perm = torch.randperm(total, generator=gen)
            for i in range(0, total, cfg.minibatch):
                mb = perm[i:i + cfg.minibatch]
                v_loss = (critic(b_obs[mb], b_z[mb], b_t[mb]) - b_ret[mb]).square().mean()
                opt_v.zero_grad(set_to_none=True)
                v_loss.backward()
                nn.utils.clip_grad_norm_(critic.parameters(), cfg.max_grad_norm)
                opt_v.step()
                mean = net.policy(torch.cat([b_obs[mb], b_z[mb], b_t[mb]], -1))
                logp = -((b_act[mb] - mean) ** 2).sum(-1) / (2 * std * std)
                ratio = torch.exp(logp - b_logp[mb])
                a_mb = b_adv[mb]
                a_mb = (a_mb - a_mb.mean()) / (a_mb.std() + 1e-8)
                pg = -torch.min(ratio * a_mb, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a_mb).mean()
                anchor_kl = ((mean - b_mu0[mb]) ** 2).sum(-1).mean() / (2 * std * std)
                if learn_actor:
                    opt.zero_grad(set_to_none=True)
                    (pg + cfg.anchor_coef * anchor_kl).backward()
                    nn.utils.clip_grad_norm_(net.policy.parameters(), cfg.max_grad_norm)
                    opt.step()
                sums += torch.stack([pg.detach(), anchor_kl.detach(), v_loss.detach(),
                                     ((ratio - 1).abs() > cfg.clip).float().mean().detach()])
                count += 1
                kl_sum += float((b_logp[mb] - logp.detach()).mean())
                kl_n += 1
            kl = kl_sum / kl_n
            if learn_actor:
                lr = min(lr * 1.5, cfg.lr_max) if kl < 0.5 * cfg.kl_target else lr
                lr = max(lr / 1.5, cfg.lr_min) if kl > 2.0 * cfg.kl_target else lr
                for g in opt.param_groups:
                    g["lr"] = lr
        torch.set_num_threads(1)
        samples += total
        it += 1
        wall = time.time() - t0
        s = (sums / count).tolist()
        row = {"iteration": it, "samples": samples, "lr": lr, "kl": kl, "policy_loss": s[0], "anchor_kl": s[1],
               "value_loss": s[2], "clipfrac": s[3], "actor_learning": learn_actor,
               "falls_per_step": float(falls.sum() / steps.sum()),
               **{f"falls_{name}": float(f / k) if k else float("nan")
                  for name, f, k in zip(FINETUNE_REGIMES, falls, steps, strict=True)},
               "samples_per_s": total / wall, "sim_fraction": t_sim / wall}
        curve.append(row)
        if log_every and it % log_every == 0:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        bar.update(total)
        bar.set_postfix(falls=f"{row['falls_per_step']:.2e}", kl0=f"{row['anchor_kl']:.2f}",
                        sps=f"{row['samples_per_s']:.0f}")
        if time.time() - last_ckpt > cfg.checkpoint_every_s:
            save(path)
            last_ckpt = time.time()
        if (time_budget_s is not None and time.time() - start > time_budget_s) or (out / "STOP").is_file():
            break
    bar.close()
    (out / "STOP").unlink(missing_ok=True)
    save(path)
    import pandas as pd

    pd.DataFrame(curve).to_csv(out / "latent_finetune_curve.csv", index=False)
    return LatentFinetuneRun(checkpoint=path, curve=curve, samples=samples, wall_s=time.time() - start)

