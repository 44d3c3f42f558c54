"""Distillation of a tracker into the CALM interface by DAgger (CPU route, stage 2; LLC-ROUTES.md "Distillation").

The student (:class:`~anyskill.llc.tracking.student.StudentNetworks`: encoder E(2-s window) -> unit z, policy
π_L(a | s, z, τ)) drives the humanoids of a :class:`~anyskill.llc.tracking.TrackingEnv` with its own mean action
(after ``teacher_steps_frac`` of the run in which the teacher drives; DAgger with β decaying linearly from 1 to 0); the
frozen tracker labels every visited state with its action, converted to an env action (absolute PD target). Each env
runs one of four latent regimes per episode:

* **sliding** (probability ``sliding_prob``): every ``llc_steps`` (5) steps z = E(the reference's window that starts
  now), so τ cycles 0..4 — how a high-level policy replays a clip;
* **switch** (``switch_prob``): now and then (at the high-level cadence, or after U[llc_steps, max_switch_steps]
  steps) the reference jumps to a random window, blended in from the character's pose, and z = E(that window) — how a
  high-level policy changes skill;
* **random** (``random_latent_prob``): as switch, but z is a random unit vector and the reference is the window whose
  latent is nearest — what an exploring high-level policy sends; a fraction ``random_hold_prob`` of these episodes
  hold their one random latent to the end (the reference plays on and loops, τ passes the timing horizon), as a held
  random latent does;
* **held** (the rest): one z = E(the window of the episode's first clip frame) for the whole episode (up to 10 s),
  while the reference plays on and loops — CALM's semantics, which the skill evaluation from standing tests.

Switch and random episodes go only to the windows of ``switch_clips`` when it names clips (those the teacher
performs: a latent the teacher cannot label with a motion it survives teaches the student to fall).

A fraction ``latent_noise_prob`` of the latents get Gaussian noise (``latent_noise``) before normalisation, so that
latents between windows also produce a stable motion. Loss = MSE to the teacher's action + ``align_coef`` * align +
``uniform_coef`` * uniformity (CALM's encoder regulariser: windows of the same clip shifted by up to
``align_shift_s`` s are pulled together, all latents spread over the sphere, t = 2). Samples go into a FIFO replay
of the last ``replay_size`` labelled states (DAgger's aggregation); each iteration takes ``updates`` minibatches.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from anyskill.config.tracking import DistillConfig, TrackingConfig
from anyskill.llc import distributed as ddp
from anyskill.llc.tracking.env import TrackingEnv
from anyskill.llc.tracking.student import StudentNetworks, save_student
from anyskill.llc.tracking.tracker import Tracker
from anyskill.motion.frame_grid import AmpFrameGrid
from anyskill.motion.library import MotionLibrary


def fast_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AMX tiles or AVX512-BF16)."""
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


@dataclass
class DistillRun:
    checkpoint: Path
    curve: list[dict] = field(default_factory=list)
    samples: int = 0
    wall_s: float = 0.0


def student_config(cfg: DistillConfig, obs_dim: int, actions_num: int, frame_dim: int, motion_dt: float
                   ) -> dict[str, Any]:
    return {"latent_dim": cfg.latent_dim, "enc_steps": cfg.enc_steps, "enc_stride": cfg.enc_stride,
            "enc_units": list(cfg.enc_units), "policy_units": list(cfg.policy_units), "obs_dim": obs_dim,
            "actions_num": actions_num, "frame_dim": frame_dim, "motion_dt": motion_dt,
            "timing_horizon": cfg.timing_horizon}


def forward_windows(grid: AmpFrameGrid, start_rows: Tensor, steps: int) -> Tensor:
    """(M, steps, F) windows that start at grid rows ``start_rows`` (M,): rows s .. s + steps - 1, newest first,
    clamped to the clip's last row (as :func:`anyskill.llc.latent_checks.forward_windows` on the library)."""
    clip = grid.clip_of[start_rows]
    last = grid.clip_start[clip] + grid.clip_len[clip] - 1
    rows = (start_rows[:, None] + (steps - 1) - torch.arange(steps, device=start_rows.device)).minimum(last[:, None])
    return grid.frames[rows]


HELD, SLIDING, SWITCH, RANDOM = 0, 1, 2, 3
"""Latent regimes of an episode (module docstring)."""
REGIMES = ("held", "sliding", "switch", "random")
"""Their names, in that order (the curve's ``action_mse_<name>`` and ``terminations_<name>``: the student's action
error and the terminations per env-step in each regime's episodes, NaN where none ran)."""


def draw_regimes(cfg: DistillConfig, n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """(n,) regimes drawn with probabilities sliding_prob, switch_prob, random_latent_prob, the rest HELD."""
    u = torch.rand(n, generator=gen, device=device)
    edges = torch.tensor([cfg.sliding_prob, cfg.sliding_prob + cfg.switch_prob,
                          cfg.sliding_prob + cfg.switch_prob + cfg.random_latent_prob], device=device)
    r = torch.bucketize(u, edges, right=True)  # 0: sliding, 1: switch, 2: random, 3: held
    return torch.tensor([SLIDING, SWITCH, RANDOM, HELD], device=device)[r]


def switch_intervals(cfg: DistillConfig, n: int, gen: torch.Generator, device: torch.device) -> Tensor:
    """(n,) control steps until the next switch: ``llc_steps`` (the high-level cadence) with probability
    ``cadence_switch_prob``, else uniform in [llc_steps, max_switch_steps]."""
    span = torch.randint(cfg.llc_steps, cfg.max_switch_steps + 1, (n,), generator=gen, device=device)
    cadence = torch.rand(n, generator=gen, device=device) < cfg.cadence_switch_prob
    return torch.where(cadence, cfg.llc_steps, span)


@torch.no_grad()
def encode_bank(net: StudentNetworks, grid: AmpFrameGrid, cfg: DistillConfig, chunk: int = 4096) -> Tensor:
    """(G, latent) the encoder's latent of the window starting at every grid row."""
    rows = torch.arange(len(grid.clip_of), device=grid.frames.device)
    return torch.cat([net.encode(forward_windows(grid, rows[i:i + chunk], cfg.enc_steps)).float()
                      for i in range(0, len(rows), chunk)])


def switch_rows(grid: AmpFrameGrid, clip_names: list[str], cfg: DistillConfig) -> Tensor:
    """(G,) bool: the grid rows the switch and random regimes may go to (the windows of ``cfg.switch_clips``)."""
    if not cfg.switch_clips:
        return torch.ones(len(grid.clip_of), dtype=torch.bool, device=grid.clip_of.device)
    unknown = sorted(set(cfg.switch_clips) - set(clip_names))
    if unknown:
        raise ValueError(f"DistillConfig.switch_clips names clips not in the motion library: {unknown}")
    ids = torch.tensor([clip_names.index(c) for c in cfg.switch_clips], device=grid.clip_of.device)
    return torch.isin(grid.clip_of, ids)


def align_uniform(net: StudentNetworks, grid: AmpFrameGrid, cfg: DistillConfig, gen: torch.Generator
                  ) -> tuple[Tensor, Tensor]:
    """CALM's encoder regulariser on ``cfg.reg_batch`` random windows: (align, uniform) losses."""
    dev = grid.frames.device
    starts = torch.randint(0, len(grid.clip_of), (cfg.reg_batch,), generator=gen, device=dev)
    shift = (torch.rand(cfg.reg_batch, generator=gen, device=dev) * cfg.align_shift_s / grid.dt).long()
    z1 = net.encode(forward_windows(grid, starts, cfg.enc_steps)).float()
    z2 = net.encode(forward_windows(grid, grid.shift(starts, shift), cfg.enc_steps)).float()
    align = (z1 - z2).square().sum(-1).mean()
    d2 = torch.pdist(z1).square()
    uniform = torch.log(torch.exp(-2.0 * d2).mean() + 1e-12)
    return align, uniform


def distill(lib: MotionLibrary, teacher: Tracker, track: TrackingConfig, out_dir: str | Path,
            cfg: DistillConfig | None = None, resume: str | Path | None = None, time_budget_s: float | None = None,
            seed: int = 0, progress: bool = True, evaluate=None, log_every: int = 0) -> DistillRun:
    """DAgger-distil ``teacher`` (trained on ``track``) into a student; writes ``out_dir/llc.pth`` (a controller for
    :func:`anyskill.llc.load_llc`) and ``out_dir/distill_curve.csv``. ``evaluate(student_ckpt_path, samples) -> dict``
    runs every ``cfg.eval_every_iters`` iterations on a freshly written checkpoint.

    Data-parallel under torchrun as :func:`~anyskill.llc.tracking.tracker.train_tracker`: each process its worlds
    (seed + rank) and replay, gradients and the observation normaliser over every process, samples counted over all,
    rank 0 writes the checkpoints and the curve and runs ``evaluate``."""
    from tqdm.auto import tqdm

    cfg = cfg or DistillConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed_here = ddp.rank_seed(seed)  # data-parallel (issue 29): each process its own worlds and draws
    main, procs = ddp.is_main(), ddp.world_size()
    torch.manual_seed(seed_here)
    env = TrackingEnv(TrackingConfig(**{**asdict(track), "num_envs": cfg.num_envs, "seed": seed_here}), lib)
    dev = env.device
    gen = torch.Generator(dev).manual_seed(seed_here + 11)
    grid = AmpFrameGrid.from_library(lib, env.dt)
    grid = dataclasses.replace(grid, **{f.name: getattr(grid, f.name).to(dev) for f in dataclasses.fields(grid)
                                        if isinstance(getattr(grid, f.name), Tensor)})
    obs_dim = env.env.num_obs
    net = StudentNetworks(student_config(cfg, obs_dim, env.num_actions, grid.frame_dim, env.dt))
    net.frame_mean.copy_(grid.frames.mean(0))
    net.frame_std.copy_(grid.frames.std(0).clamp_min(1e-3))
    net.to(dev)
    teacher.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    samples, it, curve = 0, 0, []
    if resume is not None:
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["student"])
        if "optimizer" in ckpt:  # a shipped controller has none: Adam starts afresh
            opt.load_state_dict(ckpt["optimizer"])
        samples, it, curve = int(ckpt["samples"]), int(ckpt["iteration"]), list(ckpt.get("curve", []))
    ddp.broadcast_module(net)  # data-parallel: every process starts from rank 0's weights
    n = cfg.num_envs
    cap = cfg.replay_size
    bf16 = cfg.precision == "bfloat16" or (cfg.precision == "auto" and (dev.type == "cuda" or fast_bf16_cpu()))
    r_obs = torch.zeros(cap, obs_dim, device=dev)
    r_win = torch.zeros(cap, dtype=torch.long, device=dev)
    r_noise = torch.zeros(cap, cfg.latent_dim, device=dev)
    r_tau = torch.zeros(cap, dtype=torch.long, device=dev)
    r_label = torch.zeros(cap, env.num_actions, device=dev)
    r_free = torch.zeros(cap, dtype=torch.bool, device=dev)
    r_z = torch.zeros(cap, cfg.latent_dim, device=dev)
    filled, head = 0, 0

    obs = env.reset()
    regime = draw_regimes(cfg, n, gen, dev)
    win_start = env.clip_row()
    noise = torch.zeros(n, cfg.latent_dim, device=dev)
    tau = torch.zeros(n, dtype=torch.long, device=dev)
    since = torch.zeros(n, dtype=torch.long, device=dev)
    due = torch.where(regime >= SWITCH, 0, switch_intervals(cfg, n, gen, dev))  # switching envs start on a switch
    never = torch.iinfo(torch.long).max
    hold = (regime == RANDOM) & (torch.rand(n, generator=gen, device=dev) < cfg.random_hold_prob)
    """(N,) the episode is RANDOM and holds its one random latent (``random_hold_prob``)."""
    free = torch.zeros(n, dtype=torch.bool, device=dev)
    """(N,) the env's latent is a random unit vector (RANDOM regime), not an encoded window plus noise."""
    free_z = torch.zeros(n, cfg.latent_dim, device=dev)
    arange_n = torch.arange(n, device=dev)
    allowed = switch_rows(grid, list(lib.clip_names), cfg)  # (G,) windows a switch may go to
    weights = grid.weights[grid.clip_of] / grid.clip_len[grid.clip_of] * allowed  # (G,) rows drawn as the clips are

    def new_noise(m: int) -> Tensor:
        on = (torch.rand(m, generator=gen, device=dev) < cfg.latent_noise_prob).float()[:, None]
        scale = cfg.latent_noise * torch.rand(m, 1, generator=gen, device=dev)
        return on * scale * torch.randn(m, cfg.latent_dim, generator=gen, device=dev)

    def latents(rows: Tensor, eps: Tensor, mask: Tensor, z_old: Tensor) -> Tensor:
        """z = normalize(E(window at rows) + eps) where ``mask``, else ``z_old``; the free latents stay."""
        if env.dense:
            z_new = F.normalize(net.encode(forward_windows(grid, rows, cfg.enc_steps)) + eps, dim=-1)
            z_new = torch.where(free[:, None], free_z, z_new)
            return torch.where(mask[:, None], z_new, z_old)
        z_old = z_old.clone()
        r = (mask & ~free).nonzero().squeeze(-1)
        if len(r):
            z_old[r] = F.normalize(net.encode(forward_windows(grid, rows[r], cfg.enc_steps)) + eps[r], dim=-1)
        f = (mask & free).nonzero().squeeze(-1)
        z_old[f] = free_z[f]
        return z_old

    noise[:] = new_noise(n)
    start = time.time()
    last_ckpt = start
    path = out / "llc.pth"
    extra = {"tracking": asdict(track), "distill": asdict(cfg), "seed": seed}

    def save(target: Path) -> None:
        save_student(target, net, optimizer=opt.state_dict(), samples=samples, iteration=it, curve=curve, **extra)

    bar = tqdm(total=cfg.total_samples, initial=samples, unit="samples", disable=not (progress and main),
               desc="distill")
    while samples < cfg.total_samples:
        frac = samples / cfg.total_samples
        beta = max(0.0, 1.0 - frac / cfg.teacher_steps_frac) if cfg.teacher_steps_frac > 0 else 0.0
        lr = cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.time()
        stats = torch.zeros(4, device=dev)  # local error, terminations, action error, switches: summed on the device
        by_regime = torch.zeros(3, len(REGIMES), device=dev)  # per regime: action error, terminations, env-steps
        net.eval()
        with torch.no_grad():
            bank = encode_bank(net, grid, cfg) if cfg.random_latent_prob > 0 else None
            z = latents(win_start, noise, torch.ones(n, dtype=torch.bool, device=dev), free_z)
            for _ in range(cfg.horizon):
                prop = obs[:, :obs_dim]
                acting = regime
                teacher_target = env.pd_targets(teacher.act(obs))
                label = env.env_action(teacher_target)
                student_a = net.action(prop, z, tau).clamp(-1.0, 1.0)
                use_teacher = torch.rand(n, generator=gen, device=dev) < beta
                a_env = torch.where(use_teacher[:, None], label, student_a)
                idx = (head + arange_n) % cap
                r_obs[idx], r_win[idx], r_noise[idx], r_tau[idx], r_label[idx] = prop, win_start, noise, tau, label
                r_free[idx], r_z[idx] = free, z
                head = (head + n) % cap
                filled = min(filled + n, cap)
                ddp.update_norm(net.obs_norm, prop)  # data-parallel: the states of every process
                obs, _, done, info = env.step_targets(env._pd_offset + env._pd_scale * a_env)
                tau, since = tau + 1, since + 1
                # new episodes draw a regime; SWITCH and RANDOM envs start on a switch, the others on the reset's clip
                regime = torch.where(done, draw_regimes(cfg, n, gen, dev), regime)
                hold = torch.where(done, (regime == RANDOM)
                                   & (torch.rand(n, generator=gen, device=dev) < cfg.random_hold_prob), hold)
                switching = regime >= SWITCH
                switch = switching & (done | (since >= due))
                sliding = (regime == SLIDING) & (tau >= cfg.llc_steps) & ~done
                # a switch picks the next window (RANDOM: the window whose latent is nearest a random unit latent)
                # and blends the reference into it from the character's pose; the tracker labels that motion
                rows = torch.multinomial(weights, n, replacement=True, generator=gen)
                rand_z = F.normalize(torch.randn(n, cfg.latent_dim, generator=gen, device=dev), dim=-1)
                if bank is not None:
                    nearest = (rand_z @ bank.T).masked_fill(~allowed, -2.0).argmax(-1)
                    rows = torch.where(regime == RANDOM, nearest, rows)
                free = torch.where(switch | done, regime == RANDOM, free)
                free_z = torch.where((switch & (regime == RANDOM))[:, None], rand_z, free_z)
                env.switch_where(switch, grid.clip_of[rows], rows - grid.clip_start[grid.clip_of[rows]])
                if env.maybe(switch):
                    obs = env.refresh_observation(obs, switch)
                fresh_noise = new_noise(n)
                renew = done | sliding | switch
                win_start = torch.where(switch, rows, torch.where(renew, env.clip_row(), win_start))
                noise = torch.where(renew[:, None], fresh_noise, noise)
                tau = torch.where(renew, 0, tau)
                since = torch.where(switch, 0, since)
                due = torch.where(switch, torch.where(hold, never, switch_intervals(cfg, n, gen, dev)), due)
                if env.maybe(renew):
                    z = latents(win_start, noise, renew, z)
                err = (student_a - label).square().mean(-1)
                stats += torch.stack([info["local_error_m"].mean(), info["terminate"].sum().float(), err.mean(),
                                      switch.sum().float()])
                one_hot = F.one_hot(acting, len(REGIMES)).float()
                by_regime += torch.stack([err @ one_hot, info["terminate"].float() @ one_hot, one_hot.sum(0)])
        t_sim = time.time() - t0
        net.train()
        losses = torch.zeros(3, device=dev)  # behaviour cloning, align, uniform
        torch.set_num_threads(cfg.learn_threads)
        for _ in range(cfg.updates):
            mb = torch.randint(0, filled, (cfg.minibatch,), generator=gen, device=dev)
            uniq, inv = torch.unique(r_win[mb], return_inverse=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                zu = net.encode(forward_windows(grid, uniq, cfg.enc_steps)).float()
                zz = torch.where(r_free[mb, None], r_z[mb], F.normalize(zu[inv] + r_noise[mb], dim=-1))
                pred = net.action(r_obs[mb], zz, r_tau[mb]).float()
                align, unif = align_uniform(net, grid, cfg, gen)
            bc = (pred - r_label[mb]).square().mean()
            loss = bc + cfg.align_coef * align + cfg.uniform_coef * unif
            opt.zero_grad(set_to_none=True)
            loss.backward()
            ddp.sync_gradients(net)  # data-parallel: the mean gradient of every process's minibatch
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            losses += torch.stack([bc.detach(), align.detach(), unif.detach()])
        torch.set_num_threads(1)
        # data-parallel: statistics and failure rates averaged over the processes, samples counted over all
        st, ls = ddp.all_reduce_mean(stats).tolist(), ddp.all_reduce_mean(losses / cfg.updates).tolist()
        err_sum, term_sum, steps = ddp.all_reduce_mean(by_regime).tolist()
        env.fail_rate = ddp.all_reduce_mean(env.fail_rate)
        new = n * cfg.horizon * procs
        samples += new
        it += 1
        wall = time.time() - t0
        row = {"iteration": it, "samples": samples, "beta": beta, "lr": lr, "bc_loss": ls[0], "align": ls[1],
               "uniform": ls[2], "rollout_action_mse": st[2] / cfg.horizon, "local_error_m": st[0] / cfg.horizon,
               "terminations_per_step": st[1] / (cfg.horizon * n), "switches_per_step": st[3] / (cfg.horizon * n),
               **{f"action_mse_{name}": e / k if k else float("nan")
                  for name, e, k in zip(REGIMES, err_sum, steps, strict=True)},
               **{f"terminations_{name}": t / k if k else float("nan")
                  for name, t, k in zip(REGIMES, term_sum, steps, strict=True)},
               "samples_per_s": new / wall, "sim_fraction": t_sim / wall}
        if main and evaluate is not None and cfg.eval_every_iters and it % cfg.eval_every_iters == 0:
            probe = out / "llc_probe.pth"
            save(probe)
            row.update(evaluate(probe, samples))
        curve.append(row)
        if main and log_every and it % log_every == 0:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        bar.update(new)
        bar.set_postfix(bc=f"{row['bc_loss']:.4f}", err=f"{row['local_error_m']:.3f}",
                        sps=f"{row['samples_per_s']:.0f}")
        if main and time.time() - last_ckpt > cfg.checkpoint_every_s:
            save(path)
            last_ckpt = time.time()
        if ddp.broadcast_flag(time_budget_s is not None and time.time() - start > time_budget_s):  # rank 0's clock
            break
    bar.close()
    if main:
        save(path)
        import pandas as pd

        pd.DataFrame(curve).to_csv(out / "distill_curve.csv", index=False)
    ddp.barrier()  # data-parallel: the controller is there for every process
    return DistillRun(checkpoint=path, curve=curve, samples=samples, wall_s=time.time() - start)
