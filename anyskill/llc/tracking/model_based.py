"""The model-based tracker: π_T(a | s, reference) trained through a learnt world model (SuperTrack-style; LLC-ROUTES.md,
"Model-based trackers"), an option beside the PPO tracker (:mod:`anyskill.llc.tracking.tracker`).

Same task as PPO's — :class:`TrackingEnv`, its observations, residual actions, reference timelines, resets and
failure weighting — and the same :class:`Tracker` network and checkpoint, so :func:`load_tracker` and the DAgger
distillation take its output unchanged. One iteration:

1. **collect**: every world runs ``collect_steps`` control steps of the current policy with Gaussian exploration
   noise; the states before each step, the PD targets applied, the observed reference frames and the episode ends go
   into a buffer of the newest ``buffer_steps`` steps per world;
2. **world model** (:class:`~anyskill.llc.tracking.world_model.WorldModel`): from real states, the model replays the
   real PD targets of a window of ``model_window`` steps; its loss is the error of every predicted state against the
   simulator's (:func:`~anyskill.llc.tracking.world_model.state_error`), so it learns not to compound its errors;
3. **policy**: from real states, the policy acts inside the model for ``policy_window`` steps against the references
   the simulator showed (``policy_rollout``: the model's own rollout, or each step corrected onto the real
   trajectory); the loss is a dense tracking error (world and root-relative body positions, body rotations,
   body velocities; :func:`tracking_loss`) and its gradient flows back through the model's dynamics into the actor.

Windows never cross an episode's end. Samples count real control steps only. The critic of the :class:`Tracker` is
not trained (it is kept so that PPO can fine-tune the result: ``train_tracker(initial=...)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from torch import Tensor, nn

from anyskill.config.tracking import ModelBasedConfig, TrackingConfig
from anyskill.humanoid import rotations as rot
from anyskill.llc.tracking.env import ReferenceFrames, TrackingEnv, _local_positions
from anyskill.llc.tracking.tracker import Tracker, TrackerRun, _write_curve
from anyskill.llc.tracking.world_model import BodyState, WorldModel, state_error
from anyskill.motion.library import MotionLibrary


class TransitionBuffer:
    """The newest ``steps`` control steps of N worlds, as a ring over logical step indices: the state before each step
    (:class:`BodyState` fields (T, N, B, ·)), the PD targets applied (T, N, D) rad, the reference frames observed
    before the step (offsets 1..K: (T, N, K, ·), offset 1 is what the step should reach) and whether the step ended
    the episode (T, N)."""

    def __init__(self, steps: int, n: int, nb: int, d: int, k: int, device: torch.device):
        def z(*shape: int) -> Tensor:
            return torch.zeros(steps, n, *shape, device=device)

        self.pos, self.rot, self.vel, self.ang = z(nb, 3), z(nb, 4), z(nb, 3), z(nb, 3)
        self.targets = z(d)
        self.ref_root_pos, self.ref_root_rot, self.ref_dof = z(k, 3), z(k, 4), z(k, d)
        self.ref_body_pos, self.ref_body_rot = z(k, nb, 3), z(k, nb, 4)
        self.done = torch.ones(steps, n, dtype=torch.bool, device=device)
        self.steps, self.n, self.count = steps, n, 0
        """``count``: control steps stored; the state of logical step ``count`` (not yet taken) is stored too."""

    def put_state(self, s: BodyState, ref: ReferenceFrames) -> None:
        """The state and observed references before logical step ``count``."""
        i = self.count % self.steps
        self.pos[i], self.rot[i], self.vel[i], self.ang[i] = s.pos, s.rot, s.vel, s.ang
        self.ref_root_pos[i], self.ref_root_rot[i], self.ref_dof[i] = ref.root_pos, ref.root_rot, ref.dof_pos
        self.ref_body_pos[i], self.ref_body_rot[i] = ref.body_pos, ref.body_rot

    def put_step(self, targets: Tensor, done: Tensor) -> None:
        """The PD targets (N, D) applied at logical step ``count`` and its episode ends (N,); then ``count`` += 1."""
        i = self.count % self.steps
        self.targets[i], self.done[i] = targets, done
        self.count += 1

    def sample(self, window: int, m: int, gen: torch.Generator) -> tuple[Tensor, Tensor] | None:
        """``m`` windows of ``window`` steps within one episode, uniformly among all there are: (slots (m, window + 1)
        ring indices of the states, worlds (m,)); None while there are none."""
        lo, hi = max(0, self.count - self.steps + 1), self.count - window  # first / last logical start
        if hi < lo:
            return None
        dev = self.done.device
        logical = torch.arange(lo, self.count, device=dev)
        ends = torch.cat([torch.zeros(1, self.n, device=dev), self.done[logical % self.steps].float().cumsum(0)])
        starts = torch.arange(hi - lo + 1, device=dev)
        valid = ((ends[starts + window] - ends[starts]) == 0).nonzero()  # (V, 2): start, world
        if len(valid) == 0:
            return None
        pick = valid[torch.randint(len(valid), (m,), generator=gen, device=dev)]
        slots = (pick[:, :1] + lo + torch.arange(window + 1, device=dev)) % self.steps
        return slots, pick[:, 1]

    def states(self, slots: Tensor, worlds: Tensor) -> BodyState:
        """States of windows: fields (m, W + 1, B, ·)."""
        w = worlds[:, None]
        return BodyState(self.pos[slots, w], self.rot[slots, w], self.vel[slots, w], self.ang[slots, w])

    def references(self, slots: Tensor, worlds: Tensor) -> ReferenceFrames:
        """Observed reference frames of windows: fields (m, W + 1, K, ·)."""
        w = worlds[:, None]
        return ReferenceFrames(self.ref_root_pos[slots, w], self.ref_root_rot[slots, w], self.ref_dof[slots, w],
                               self.ref_body_pos[slots, w], self.ref_body_rot[slots, w])


def _at(s: BodyState, j: int) -> BodyState:
    return BodyState(s.pos[:, j], s.rot[:, j], s.vel[:, j], s.ang[:, j])


def _ref_at(r: ReferenceFrames, j: int) -> ReferenceFrames:
    return ReferenceFrames(r.root_pos[:, j], r.root_rot[:, j], r.dof_pos[:, j], r.body_pos[:, j], r.body_rot[:, j])


def tracking_loss(s: BodyState, ref: ReferenceFrames, dt: float, cfg: ModelBasedConfig) -> Tensor:
    """(M,) tracking error of states ``s`` against reference frames ``ref`` (offsets [k, k + 1]: the frame to reach
    and the next, for velocities): weighted mean body position error in the world and relative to the root (m), body
    rotation error (6-D tan-norm distance), body velocity error in the heading frame (m/s)."""
    r_pos, r_next = ref.body_pos[:, 0], ref.body_pos[:, 1]
    world = (s.pos - r_pos).norm(dim=-1).mean(-1)
    local = (_local_positions(s.pos, s.rot[:, 0]) - _local_positions(r_pos, ref.root_rot[:, 0])).norm(dim=-1)
    rot_err = (rot.quat_to_tan_norm(s.rot) - rot.quat_to_tan_norm(ref.body_rot[:, 0])).norm(dim=-1)
    n, b = s.pos.shape[:2]
    h = rot.heading_quat_inverse(s.rot[:, 0])[:, None].expand(n, b, 4)
    vel = rot.quat_rotate(h, s.vel - (r_next - r_pos) / dt).norm(dim=-1)
    return (cfg.w_pos * world + cfg.w_local * local.mean(-1) + cfg.w_rot * rot_err.mean(-1)
            + cfg.w_vel * vel.mean(-1))


class _Targets:
    """Residual actions -> the PD targets the env applies (its clamps included, differentiably where not clamped)."""

    def __init__(self, env: TrackingEnv):
        self.offset, self.scale, self.residual = env._pd_offset, env._pd_scale, env.cfg.residual_scale

    def __call__(self, ref_dof: Tensor, actions: Tensor) -> Tensor:
        targets = ref_dof + self.residual * self.scale * actions.clamp(-1.0, 1.0)
        return self.offset + self.scale * ((targets - self.offset) / self.scale).clamp(-1.0, 1.0)


def train_model_based_tracker(lib: MotionLibrary, out_dir: str | Path, track: TrackingConfig | None = None,
                              cfg: ModelBasedConfig | None = None, resume: str | Path | None = None,
                              time_budget_s: float | None = None, seed: int = 0, progress: bool = True,
                              evaluate: Callable[[Tracker, int], dict] | None = None,
                              log_every: int = 0) -> TrackerRun:
    """Train (or continue) a tracker through a world model (module docstring) on every clip of ``lib``; writes
    ``out_dir/tracker.pth`` (the PPO tracker's format, plus the world model) and ``tracker_curve.csv``.

    Stops at ``cfg.total_samples`` real samples or after ``time_budget_s`` s of wall time, with a checkpoint.
    ``evaluate(tracker, samples) -> dict`` runs every ``cfg.eval_every_samples`` samples; its values go into the
    curve. Curve rows: samples, model_error (the model's one-step state error on the newest transitions, before it
    learns from them), model_loss (per-step state error of the model's training windows), policy_loss (tracking loss
    inside the model), the real rollouts' reward, body_error_m, local_error_m and terminations_per_step."""
    from tqdm.auto import tqdm

    track = track or TrackingConfig(seed=seed)
    cfg = cfg or ModelBasedConfig()
    if track.future_frames < 2:
        raise ValueError("the model-based tracker needs TrackingConfig.future_frames >= 2 (reference velocities)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    env = TrackingEnv(track, lib)
    dev = env.device
    gen = torch.Generator(dev).manual_seed(seed + 11)
    nb, d = env.model.num_bodies, env.num_actions
    net = Tracker(env.num_obs, d, cfg.actor_units, cfg.critic_units).to(dev)
    model = WorldModel(nb, d, env.dt, cfg.model_units).to(dev)
    opt_pi = torch.optim.Adam(net.actor.parameters(), lr=cfg.policy_lr)
    opt_m = torch.optim.Adam(model.net.parameters(), lr=cfg.model_lr)
    samples, it, curve = 0, 0, []
    if resume is not None:
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["tracker"])
        model.load_state_dict(ckpt["world_model"])
        opt_pi.load_state_dict(ckpt["optimizer"])
        opt_m.load_state_dict(ckpt["model_optimizer"])
        samples, it, curve = int(ckpt["samples"]), int(ckpt["iteration"]), list(ckpt.get("curve", []))
        env.fail_rate.copy_(ckpt["fail_rate"])
    to_targets = _Targets(env)
    buf = TransitionBuffer(cfg.buffer_steps, env.num_envs, nb, d, track.future_frames, dev)
    path = out / "tracker.pth"

    def save() -> None:
        tmp = path.with_suffix(".tmp")
        torch.save({"tracker": {k: v.cpu() for k, v in net.state_dict().items()}, "tracker_config": net.config(),
                    "tracking": asdict(track), "model_based": asdict(cfg), "optimizer": opt_pi.state_dict(),
                    "world_model": {k: v.cpu() for k, v in model.state_dict().items()},
                    "world_model_config": model.config(), "model_optimizer": opt_m.state_dict(),
                    "samples": samples, "iteration": it, "curve": curve, "fail_rate": env.fail_rate.cpu().clone(),
                    "seed": seed, "method": "model_based"}, tmp)
        tmp.replace(path)

    obs = env.reset()
    assert env._ref is not None
    buf.put_state(BodyState.of(env.backend), env._ref)
    start = last_ckpt = time.time()
    next_eval = (samples // cfg.eval_every_samples + 1) * cfg.eval_every_samples if cfg.eval_every_samples else 0
    bar = tqdm(total=cfg.total_samples, initial=samples, unit="samples", disable=not progress, desc="tracker (model)")
    while samples < cfg.total_samples:
        t0 = time.time()
        stats = torch.zeros(5, device=dev)  # reward, body error, local error, terminations, steps
        with torch.no_grad():
            for _ in range(cfg.collect_steps):
                before = BodyState.of(env.backend)
                net.norm.update(obs)
                mean = net.act(obs)
                assert env._ref is not None
                targets = to_targets(env._ref.dof_pos[:, 0], mean + cfg.action_std * torch.randn_like(mean))
                obs, rew, done, info = env.step_targets(targets)
                buf.put_step(targets, done)
                if not bool(done.all()):
                    keep = ~done  # transitions that ended an episode show the reset state, not the step's result
                    model.update_norms(_select(before, keep), targets[keep], _select(BodyState.of(env.backend),
                                                                                     keep))
                assert env._ref is not None
                buf.put_state(BodyState.of(env.backend), env._ref)
                stats += torch.stack([rew.mean(), info["body_error_m"].mean(), info["local_error_m"].mean(),
                                      info["terminate"].float().mean(), torch.ones((), device=dev)])
        t_sim = time.time() - t0
        samples += cfg.collect_steps * env.num_envs
        torch.set_num_threads(cfg.learn_threads)
        obs_scale = (net.norm.var[:model.in_norm.mean.shape[0] - d] + 1e-5).sqrt().clamp_min(1e-2)
        m_new = _newest_error(model, buf, cfg.collect_steps, obs_scale)
        m_loss = _learn_model(model, opt_m, buf, cfg, gen, obs_scale)
        p_loss = float("nan")
        if samples >= cfg.warmup_samples:
            p_loss = _learn_policy(net, model, opt_pi, buf, cfg, gen, to_targets, env.dt)
        torch.set_num_threads(1)
        it += 1
        wall = time.time() - t0
        st = (stats / stats[4]).tolist()
        row = {"iteration": it, "samples": samples, "time": time.time(), "model_loss": m_loss, "model_error": m_new,
               "policy_loss": p_loss, "reward": st[0], "body_error_m": st[1], "local_error_m": st[2],
               "terminations_per_step": st[3], "samples_per_s": cfg.collect_steps * env.num_envs / wall,
               "sim_fraction": t_sim / wall}
        if evaluate is not None and next_eval and samples >= next_eval:
            next_eval += cfg.eval_every_samples
            net.eval()
            row.update(evaluate(net, samples))
            net.train()
        curve.append(row)
        if log_every and it % log_every == 0:
            print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True)
        bar.update(cfg.collect_steps * env.num_envs)
        bar.set_postfix(model=f"{m_loss:.3f}", track=f"{p_loss:.3f}", err=f"{row['local_error_m']:.3f}")
        if time.time() - last_ckpt > cfg.checkpoint_every_s:
            save()
            last_ckpt = time.time()
        if time_budget_s is not None and time.time() - start > time_budget_s:
            break
    bar.close()
    save()
    _write_curve(out / "tracker_curve.csv", curve)
    return TrackerRun(checkpoint=path, curve=curve, samples=samples, wall_s=time.time() - start)


def _shifted(real: BodyState, pred: BodyState, base: BodyState) -> BodyState:
    """``real`` moved by the difference between two predictions (``pred`` - ``base``; rotations: pred base^-1)."""
    q = rot.quat_mul(rot.quat_mul(pred.rot, rot.quat_conjugate(base.rot)), real.rot)
    return BodyState(real.pos + pred.pos - base.pos, rot.quat_normalize(q), real.vel + pred.vel - base.vel,
                     real.ang + pred.ang - base.ang)


def _select(s: BodyState, keep: Tensor) -> BodyState:
    return BodyState(s.pos[keep], s.rot[keep], s.vel[keep], s.ang[keep])


@torch.no_grad()
def _newest_error(model: WorldModel, buf: TransitionBuffer, steps: int, obs_scale: Tensor) -> float:
    """The model's one-step state error on the ``steps`` newest control steps of every world, before it learns from
    them (held-out); steps that ended an episode are left out."""
    errs = []
    for t in range(buf.count - steps, buf.count):
        i, j = t % buf.steps, (t + 1) % buf.steps
        keep = ~buf.done[i]
        if bool(keep.any()):
            now = BodyState(buf.pos[i, keep], buf.rot[i, keep], buf.vel[i, keep], buf.ang[i, keep])
            nxt = BodyState(buf.pos[j, keep], buf.rot[j, keep], buf.vel[j, keep], buf.ang[j, keep])
            errs.append(state_error(model(now, buf.targets[i, keep]), nxt, obs_scale))
    return float(torch.cat(errs).mean()) if errs else float("nan")


def _learn_model(model: WorldModel, opt: torch.optim.Optimizer, buf: TransitionBuffer, cfg: ModelBasedConfig,
                 gen: torch.Generator, obs_scale: Tensor) -> float:
    """``cfg.model_updates`` steps on windows of real transitions; returns the mean per-step state error."""
    total, count = 0.0, 0
    for _ in range(cfg.model_updates):
        picked = buf.sample(cfg.model_window, cfg.model_batch, gen)
        if picked is None:
            break
        slots, worlds = picked
        real = buf.states(slots, worlds)
        targets = buf.targets[slots[:, :-1], worlds[:, None]]
        s = _at(real, 0)
        loss = torch.zeros((), device=targets.device)
        for j in range(cfg.model_window):
            s = model(s, targets[:, j])
            loss = loss + state_error(s, _at(real, j + 1), obs_scale).mean()
        loss = loss / cfg.model_window
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.net.parameters(), cfg.max_grad_norm)
        opt.step()
        total, count = total + loss.item(), count + 1
    return total / count if count else float("nan")


def _learn_policy(net: Tracker, model: WorldModel, opt: torch.optim.Optimizer, buf: TransitionBuffer,
                  cfg: ModelBasedConfig, gen: torch.Generator, to_targets: _Targets, dt: float) -> float:
    """``cfg.policy_updates`` steps of the actor through the model from real states; returns the mean tracking
    loss per step."""
    total, count = 0.0, 0
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(cfg.policy_updates):
            picked = buf.sample(cfg.policy_window, cfg.policy_batch, gen)
            if picked is None:
                break
            slots, worlds = picked
            refs = buf.references(slots, worlds)
            corrected = cfg.policy_rollout == "corrected"
            real = buf.states(slots if corrected else slots[:, :1], worlds)
            logged = buf.targets[slots[:, :-1], worlds[:, None]]
            s = _at(real, 0)
            loss = torch.zeros((), device=s.pos.device)
            for j in range(cfg.policy_window):
                ref = _ref_at(refs, j)
                obs = torch.cat([s.obs(), TrackingEnv.reference_features(ref, s.pos, s.rot)], -1)
                a = net.act(obs)
                nxt = model(s, to_targets(ref.dof_pos[:, 0], a))
                if corrected:
                    with torch.no_grad():
                        base = model(_at(real, j), logged[:, j])
                    nxt = _shifted(_at(real, j + 1), nxt, base)
                s = nxt
                loss = loss + tracking_loss(s, ref.at(slice(0, 2)), dt, cfg).mean()
                loss = loss + cfg.w_action * a.square().mean()
            loss = loss / cfg.policy_window
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.actor.parameters(), cfg.max_grad_norm)
            opt.step()
            total, count = total + loss.item(), count + 1
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return total / count if count else float("nan")
