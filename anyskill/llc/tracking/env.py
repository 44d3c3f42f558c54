"""The motion-tracking task of the tracker π_T(a | s, reference) (first stage of the tracking route, LLC-ROUTES.md).

N humanoids each follow a **reference timeline** built from one clip of a :class:`MotionLibrary`:

* an episode starts either in the clip's own state at a random time (reference state init, RSI) or in the default
  standing pose, from which the reference **blends** over ``blend_steps`` control steps into the clip's frame ``k0``
  (the high-level policy starts standing, so the controller must get into every clip from there);
* the clip then plays at the control rate; at its end the reference blends from the last frame into frame 0,
  re-anchored at the character (heading and ground position), and plays again, so a reference never ends and an
  episode may be longer than its clip (a held latent of the distilled student repeats its skill the same way);
* the clip's frames are placed in the world by an **anchor** (a yaw and a ground offset): identity for RSI, the
  character's heading and position for a standing start or a loop.

Actions are **residuals on the reference joint angles**: PD target = ref_dof(next step) + ``residual_scale`` *
pd_scale * a, a in [-1, 1], so a zero action replays the clip through the PD loop. The tracker observes the 223-D
policy observation and, for each of the next ``future_frames`` reference frames, the reference body positions
relative to the simulated ones (heading frame), the reference pose relative to its own root, its root height, its
root rotation in the character's heading frame and its joint angles (:meth:`TrackingEnv.observation`).

Reward (DeepMimic-style sum of kernels, weights in :class:`TrackingConfig`): joint angles, root-relative body
positions, key bodies (hands, feet, head) in the world, root position and rotation, root velocity, joint velocities.
Episodes end early when the mean body position error exceeds ``termination_error_m``; they time out after
``episode_length`` steps (bootstrapped). Clips whose episodes fail more are drawn more often
(``failure_weighting``).

**Devices.** Everything lives on ``TrackingConfig.device``: MuJoCo C worlds on the CPU, MuJoCo Warp worlds on a GPU
(``TrackingConfig.backend``: "auto" picks Warp on CUDA; "warp" on the CPU runs Warp's CPU device, for tests). Every
clip's reference pose and body kinematics are computed once per grid row at construction (:class:`ReferenceGrid`);
a control step then only places cached rows by each env's anchor, and runs forward kinematics for the envs in a
blend. Resets, loops and failure weighting are written with masks over all envs, so a step on a GPU waits for the
host nowhere (``dense`` mode: blends computed for every env and selected); on the CPU the same code takes the blending
and resetting envs by index, which is cheaper there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from anyskill.config.tracking import TrackingConfig
from anyskill.humanoid import rotations as rot
from anyskill.humanoid.obs import policy_obs
from anyskill.humanoid.skeleton import Skeleton
from anyskill.motion.library import MotionLibrary
from anyskill.sim.backend import Backend
from anyskill.sim.env import EnvConfig, HumanoidEnv

Tensor = torch.Tensor
HEAD = "head"


class ReferenceGrid:
    """Every clip's pose at the control rate, on ``device``: root_pos (G, 3) m, root_rot (G, 4) wxyz, dof_pos (G, D)
    rad, their rates root_vel (G, 3) m/s, root_ang_vel (G, 3) rad/s, dof_vel (G, D) rad/s (reference state init), the
    bodies' forward kinematics body_pos (G, B, 3), body_rot (G, B, 4) (clip frame); clip frame ranges clip_start /
    clip_len (C,) long and the clip of each row clip_of (G,). Row layout is that of
    :class:`~anyskill.motion.frame_grid.AmpFrameGrid` at the same ``dt``, so a row indexes both."""

    def __init__(self, lib: MotionLibrary, dt: float, skeleton: Skeleton | None = None,
                 device: str | torch.device = "cpu"):
        lengths = torch.floor(lib.durations.double().cpu() / dt + 1e-6).long() + 1
        clip_of = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        start = torch.cumsum(lengths, 0) - lengths
        k = torch.arange(len(clip_of)) - start[clip_of]
        times = (k.double() * dt).float().minimum(lib.durations.cpu()[clip_of])
        s = lib.state_at(clip_of.to(lib.device), times.to(lib.device))
        dev = torch.device(device)
        self.root_pos, self.root_rot, self.dof_pos = (x.to(dev, torch.float32) for x in
                                                      (s.root_pos, s.root_rot, s.dof_pos))
        self.root_vel, self.root_ang_vel, self.dof_vel = (x.to(dev, torch.float32) for x in
                                                          (s.root_vel, s.root_ang_vel, s.dof_vel))
        skeleton = skeleton or Skeleton(lib.model)
        self.body_pos, self.body_rot = skeleton.forward_kinematics(self.root_pos, self.root_rot, self.dof_pos)
        self.clip_start, self.clip_len, self.clip_of = start.to(dev), lengths.to(dev), clip_of.to(dev)
        self.dt = dt


def yaw_quat(yaw: Tensor) -> Tensor:
    """(...,) rad -> (..., 4) wxyz rotations about z."""
    half = 0.5 * yaw
    return torch.stack([half.cos(), torch.zeros_like(half), torch.zeros_like(half), half.sin()], -1)


@dataclass
class ReferenceFrames:
    """Reference poses of N envs at O step offsets: root_pos (N, O, 3), root_rot (N, O, 4), dof_pos (N, O, D),
    body_pos (N, O, B, 3), body_rot (N, O, B, 4); world frame."""

    root_pos: Tensor
    root_rot: Tensor
    dof_pos: Tensor
    body_pos: Tensor
    body_rot: Tensor

    def at(self, offsets: slice) -> ReferenceFrames:
        """The frames of a range of offsets."""
        return ReferenceFrames(self.root_pos[:, offsets], self.root_rot[:, offsets], self.dof_pos[:, offsets],
                               self.body_pos[:, offsets], self.body_rot[:, offsets])


def make_backend(cfg: TrackingConfig) -> Backend:
    """The physics of ``cfg``: MuJoCo Warp for ``backend`` "warp" (or "auto" on a CUDA device), else MuJoCo C."""
    use_warp = cfg.backend == "warp" or (cfg.backend == "auto" and torch.device(cfg.device).type == "cuda")
    if use_warp:
        from anyskill.sim.warp_backend import WarpBackend

        return WarpBackend(cfg.num_envs, device=cfg.device)
    from anyskill.sim.mujoco_backend import MujocoBackend

    return MujocoBackend(cfg.num_envs, device=torch.device(cfg.device), num_threads=cfg.num_threads)


class TrackingEnv:
    """N humanoids tracking reference timelines (module docstring), batched torch on ``cfg.device``.

    ``reset() -> obs (N, num_obs)``; ``step(actions (N, 28)) -> obs, reward (N,), done (N,), info`` with info
    ``terminate`` / ``time_out`` (N,) bool, ``terminal_obs`` (N, num_obs) (the reached state's observation before
    resets), ``body_error_m`` (N,) mean body position error (world) and ``local_error_m`` (N,) root-relative.
    """

    def __init__(self, cfg: TrackingConfig, motion_lib: MotionLibrary, backend: Backend | None = None):
        self.cfg = cfg
        self.lib = motion_lib
        self.device = dev = torch.device(cfg.device)
        backend = backend if backend is not None else make_backend(cfg)
        self.env = HumanoidEnv(
            EnvConfig(num_envs=cfg.num_envs, state_init="default", fall_init_prob=0.0, recovery_episode_prob=0.0,
                      episode_length=None, enable_early_termination=False, seed=cfg.seed, device=cfg.device,
                      num_threads=cfg.num_threads),
            backend=backend)
        env = self.env
        self.backend = env.backend
        self.num_envs, self.dt, self.model = cfg.num_envs, env.dt, env.model
        self.skeleton = env.skeleton
        self.dense = dev.type != "cpu" if cfg.dense is None else cfg.dense
        """masks over all envs instead of index lists (no host synchronisation; the GPU mode)."""
        self.grid = ReferenceGrid(motion_lib, self.dt, self.skeleton, dev)
        self.num_actions = env.num_actions
        nb = self.model.num_bodies
        self.frame_obs_dim = 3 * nb + 3 * (nb - 1) + 1 + 6 + self.num_actions
        self.num_obs = env.num_obs + cfg.future_frames * self.frame_obs_dim
        self._key_ids = torch.tensor(list(self.model.key_body_ids) + [self.model.body_index(HEAD)], device=dev)
        self._pd_offset, self._pd_scale = env._pd_offset, env._pd_scale
        self._gen = torch.Generator(dev).manual_seed(cfg.seed + 7)
        n, d = cfg.num_envs, self.num_actions
        long: dict[str, Any] = dict(dtype=torch.long, device=dev)
        self.clip = torch.zeros(n, **long)
        self.k_start = torch.zeros(n, **long)
        self.seg_t0 = torch.zeros(n, **long)
        """(N,) step at which the clip part of the current segment begins (blend before it)."""
        self.blend = torch.zeros(n, **long)
        self.step_count = torch.zeros(n, **long)
        self.from_root_pos = torch.zeros(n, 3, device=dev)
        self.from_root_rot = torch.zeros(n, 4, device=dev)
        self.from_dof = torch.zeros(n, d, device=dev)
        self.anchor_yaw = torch.zeros(n, device=dev)
        self.anchor_p0 = torch.zeros(n, 3, device=dev)
        self.anchor_off = torch.zeros(n, 3, device=dev)
        self.step_offset = torch.zeros(n, **long)
        self.fail_rate = torch.full((motion_lib.num_clips,), 0.5, device=dev)
        self._weights = motion_lib.weights.to(dev, torch.float32)
        self._durations = motion_lib.durations.to(dev, torch.float32)
        self._obs_offsets = list(range(1, cfg.future_frames + 1))
        self._ref: ReferenceFrames | None = None

    def maybe(self, mask: Tensor) -> bool:
        """Whether work guarded by ``mask`` (any env) must run: always in dense mode (no host sync), else mask.any()."""
        return True if self.dense else bool(mask.any())

    # ------------------------------------------------------------------ reference timeline
    def _place(self, rows: Tensor, yaw: Tensor, p0: Tensor, off: Tensor) -> tuple[Tensor, ...]:
        """Grid rows (...,) placed by anchors (yaw (...,), p0 / off (..., 3)): root_pos, root_rot, dof, body_pos,
        body_rot (world)."""
        g = self.grid
        q = yaw_quat(yaw)
        root_pos = rot.quat_rotate(q, g.root_pos[rows] - p0) + off
        qb = q.unsqueeze(-2).expand(*g.body_rot[rows].shape)
        body_pos = rot.quat_rotate(qb, g.body_pos[rows] - p0.unsqueeze(-2)) + off.unsqueeze(-2)
        body_rot = rot.quat_mul(qb, g.body_rot[rows])
        return root_pos, rot.quat_mul(q, g.root_rot[rows]), g.dof_pos[rows], body_pos, body_rot

    def _aligned(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Grid rows (N,) of every env placed by its anchor: root_pos (N, 3), root_rot (N, 4), dof (N, D)."""
        g = self.grid
        q = yaw_quat(self.anchor_yaw)
        p = rot.quat_rotate(q, g.root_pos[rows] - self.anchor_p0) + self.anchor_off
        return p, rot.quat_mul(q, g.root_rot[rows]), g.dof_pos[rows]

    def clip_row(self, offset: int | Tensor = 0) -> Tensor:
        """(N,) or (N, O) grid row each env's reference is at ``offset`` steps from now (the clip frame being blended
        into during a blend), clamped to the clip's last frame; ``offset`` an int or (O,) long."""
        off = torch.as_tensor(offset, device=self.device)
        col = (lambda x: x[:, None]) if off.dim() else (lambda x: x)
        s = col(self.step_count) + off
        k = (col(self.k_start) + (s - col(self.seg_t0)).clamp_min(0)).minimum(col(self.grid.clip_len[self.clip]) - 1)
        return col(self.grid.clip_start[self.clip]) + k

    def reference(self, offsets: list[int]) -> ReferenceFrames:
        """Reference poses of all envs at ``offsets`` steps from now (module docstring)."""
        o = len(offsets)
        off = torch.tensor(offsets, device=self.device)
        rows = self.clip_row(off)  # (N, O)
        a = lambda x: x[:, None].expand(-1, o, *x.shape[1:])  # noqa: E731
        root_pos, root_rot, dof, body_pos, body_rot = self._place(rows, a(self.anchor_yaw), a(self.anchor_p0),
                                                                  a(self.anchor_off))
        s = self.step_count[:, None] + off
        in_blend = s < self.seg_t0[:, None]  # (N, O)
        if self.maybe(in_blend):
            blend_len = self.blend[:, None].clamp_min(1).float()
            alpha = ((s - (self.seg_t0[:, None] - self.blend[:, None])).float() / blend_len).clamp(0.0, 1.0)
            sel: tuple[Any, ...]
            if self.dense:
                sel = (slice(None),)
                a_b = alpha
            else:
                sel = tuple(in_blend.nonzero().unbind(-1))
                a_b = alpha[sel]
            env_of = sel[0] if not self.dense else slice(None)
            frm = (self.from_root_pos[env_of], self.from_root_rot[env_of], self.from_dof[env_of])
            if self.dense:
                frm = tuple(a(x) for x in frm)
            bp = torch.lerp(frm[0], root_pos[sel], a_b[..., None])
            br = rot.quat_slerp(frm[1], root_rot[sel], a_b)
            bd = torch.lerp(frm[2], dof[sel], a_b[..., None])
            fk_pos, fk_rot = self.skeleton.forward_kinematics(bp, br, bd)
            if self.dense:
                m = in_blend[..., None]
                root_pos, root_rot, dof = (torch.where(m, x, y) for x, y in ((bp, root_pos), (br, root_rot),
                                                                            (bd, dof)))
                body_pos = torch.where(m[..., None], fk_pos, body_pos)
                body_rot = torch.where(m[..., None], fk_rot, body_rot)
            else:
                root_pos, root_rot, dof = root_pos.clone(), root_rot.clone(), dof.clone()
                body_pos, body_rot = body_pos.clone(), body_rot.clone()
                root_pos[sel], root_rot[sel], dof[sel], body_pos[sel], body_rot[sel] = bp, br, bd, fk_pos, fk_rot
        return ReferenceFrames(root_pos, root_rot, dof, body_pos, body_rot)

    def _start_blend(self, mask: Tensor, k0: Tensor, from_sim: bool) -> None:
        """Begin a segment in the envs of ``mask`` (N,) bool: blend over ``blend_steps`` from the character's pose
        (``from_sim``) or from the reference's current pose into clip frame ``k0`` (N,), anchored at the character
        (heading and ground position; the blended root height stays the reference's)."""
        b = self.backend
        if from_sim:
            src = (b.body_pos()[:, 0], b.body_rot()[:, 0], b.dof_pos())
        else:
            src = self._aligned(self.clip_row())
        m1 = mask[:, None]
        self.from_root_pos = torch.where(m1, src[0], self.from_root_pos)
        self.from_root_rot = torch.where(m1, src[1], self.from_root_rot)
        self.from_dof = torch.where(m1, src[2], self.from_dof)
        k0 = k0.minimum(self.grid.clip_len[self.clip] - 1)  # rows outside the mask may hold any k0
        rows = self.grid.clip_start[self.clip] + k0
        clip_yaw = rot.heading_angle(self.grid.root_rot[rows])
        self.anchor_yaw = torch.where(mask, rot.heading_angle(b.body_rot()[:, 0]) - clip_yaw, self.anchor_yaw)
        p0 = self.grid.root_pos[rows] * torch.tensor([1.0, 1.0, 0.0], device=self.device)
        off = b.body_pos()[:, 0] * torch.tensor([1.0, 1.0, 0.0], device=self.device)
        self.anchor_p0 = torch.where(m1, p0, self.anchor_p0)
        self.anchor_off = torch.where(m1, off, self.anchor_off)
        self.k_start = torch.where(mask, k0, self.k_start)
        self.blend = torch.where(mask, self.cfg.blend_steps, self.blend)
        self.seg_t0 = torch.where(mask, self.step_count + self.cfg.blend_steps, self.seg_t0)

    # ------------------------------------------------------------------ episodes
    def _clip_probs(self) -> Tensor:
        w = self._weights
        if self.cfg.failure_weighting > 0:
            f = self.cfg.failure_weighting
            w = w * ((1 - f) + f * (self.fail_rate + 0.05))
        return w / w.sum()

    def reset_where(self, mask: Tensor, clips: Tensor | None = None, standing: Tensor | None = None,
                    k0: Tensor | None = None) -> None:
        """New episodes in the envs of ``mask`` (N,) bool: clips drawn by failure-weighted probability (or ``clips``
        (N,)), standing starts with probability ``standing_start_prob`` (or the bool mask ``standing`` (N,)), start
        frames drawn (or ``k0`` (N,): grid frame within the clip). Values of envs outside ``mask`` are ignored."""
        cfg, g, n, dev = self.cfg, self.grid, self.num_envs, self.device
        # draws first, every call: the random stream is the same whether or not (and how) envs reset
        if clips is None:
            clips = torch.multinomial(self._clip_probs(), n, replacement=True, generator=self._gen)
        if standing is None:
            standing = torch.rand(n, generator=self._gen, device=dev) < cfg.standing_start_prob
        if k0 is None:
            u = torch.rand(n, generator=self._gen, device=dev)
            k0 = (u * g.clip_len[clips].float()).long().minimum(g.clip_len[clips] - 1)
            first = torch.rand(n, generator=self._gen, device=dev) < cfg.first_frame_prob
            k0 = torch.where(standing & first, torch.zeros_like(k0), k0)
        if not self.maybe(mask):
            return
        self.clip = torch.where(mask, clips, self.clip)
        self.step_count = torch.where(mask, 0, self.step_count)
        rsi, st = mask & ~standing, mask & standing
        # the new physics state: the clip's reference state (RSI) or the default standing pose
        row = g.clip_start[self.clip] + k0.minimum(g.clip_len[self.clip] - 1)
        r1 = rsi[:, None]
        spawn = torch.tensor([0.0, 0.0, self.env.cfg.spawn_height], device=dev)
        ident = torch.tensor([1.0, 0.0, 0.0, 0.0], device=dev)
        state = (torch.where(r1, g.root_pos[row], spawn), torch.where(r1, g.root_rot[row], ident),
                 torch.where(r1, g.root_vel[row], 0.0), torch.where(r1, g.root_ang_vel[row], 0.0),
                 torch.where(r1, g.dof_pos[row], 0.0), torch.where(r1, g.dof_vel[row], 0.0))
        self.backend.set_state_masked(mask, *state)
        self.anchor_yaw = torch.where(rsi, 0.0, self.anchor_yaw)
        self.anchor_p0 = torch.where(r1, 0.0, self.anchor_p0)
        self.anchor_off = torch.where(r1, 0.0, self.anchor_off)
        self.k_start = torch.where(rsi, k0, self.k_start)
        self.blend = torch.where(rsi, 0, self.blend)
        self.seg_t0 = torch.where(rsi, 0, self.seg_t0)
        if self.maybe(st):
            self._start_blend(st, k0, from_sim=True)

    def reset_envs(self, ids: Tensor, clips: Tensor | None = None, standing: Tensor | None = None,
                   k0: Tensor | None = None) -> None:
        """:meth:`reset_where` for the envs ``ids`` (M,), with optional ``clips`` / ``standing`` / ``k0`` (M,)."""
        ids = torch.as_tensor(ids, device=self.device).long()
        mask = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        mask[ids] = True

        def full(x: Tensor | None, dtype: torch.dtype) -> Tensor | None:
            if x is None:
                return None
            out = torch.zeros(self.num_envs, dtype=dtype, device=self.device)
            out[ids] = torch.as_tensor(x, device=self.device).to(dtype)
            return out

        self.reset_where(mask, full(clips, torch.long), full(standing, torch.bool), full(k0, torch.long))

    def switch_where(self, mask: Tensor, clips: Tensor, k0: Tensor) -> None:
        """Switch the references of the envs of ``mask`` (N,) to clip ``clips`` (N,) at frame ``k0`` (N,), blended in
        over ``blend_steps`` from the character's pose (a high-level policy changing skills)."""
        if not self.maybe(mask):
            return
        self.clip = torch.where(mask, clips, self.clip)
        self._start_blend(mask, k0, from_sim=True)

    def refresh_observation(self, obs: Tensor, mask: Tensor) -> Tensor:
        """After changing references outside :meth:`step`: the observed reference frames recomputed, and ``obs``
        (N, num_obs) with the rows of ``mask`` (N,) replaced by the new observation."""
        self._ref = self.reference(self._obs_offsets)
        return torch.where(mask[:, None], self.observation(), obs)

    def reset(self) -> Tensor:
        self.reset_where(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        # stagger the first episodes so that time-outs do not come all at once
        self.step_offset = torch.randint(0, self.cfg.episode_length, (self.num_envs,), generator=self._gen,
                                         device=self.device)
        self._ref = self.reference(self._obs_offsets)
        return self.observation()

    # ------------------------------------------------------------------ observation, step, reward
    def observation(self, ref: ReferenceFrames | None = None) -> Tensor:
        """(N, num_obs): the 223-D policy obs and, per future reference frame, 3B + 3(B-1) + 1 + 6 + D values."""
        b = self.backend
        sim_pos, sim_rot = b.body_pos(), b.body_rot()
        prop = policy_obs(sim_pos, sim_rot, b.body_vel(), b.body_ang_vel())
        ref = ref if ref is not None else self._ref
        assert ref is not None
        return torch.cat([prop, self.reference_features(ref, sim_pos, sim_rot)], -1)

    @staticmethod
    def reference_features(ref: ReferenceFrames, sim_pos: Tensor, sim_rot: Tensor) -> Tensor:
        """(N, O * per-frame) features of reference frames relative to the simulated body positions (N, B, 3) and
        rotations (N, B, 4)."""
        n, o, nb = ref.body_pos.shape[:3]
        h = rot.heading_quat_inverse(sim_rot[:, 0])  # (N, 4)
        h_b = h[:, None, None].expand(n, o, nb, 4)
        diff = rot.quat_rotate(h_b, ref.body_pos - sim_pos[:, None])
        rh = rot.heading_quat_inverse(ref.root_rot)  # (N, O, 4)
        rh_b = rh[:, :, None].expand(n, o, nb - 1, 4)
        local = rot.quat_rotate(rh_b, ref.body_pos[:, :, 1:] - ref.root_pos[:, :, None])
        root_rot = rot.quat_to_tan_norm(rot.quat_mul(h[:, None].expand(n, o, 4), ref.root_rot))
        feats = [diff.reshape(n, o, -1), local.reshape(n, o, -1), ref.root_pos[..., 2:3], root_rot, ref.dof_pos]
        return torch.cat(feats, -1).reshape(n, -1)

    def pd_targets(self, actions: Tensor) -> Tensor:
        """(N, D) residual actions in [-1, 1] -> PD targets (N, D) rad around the next reference frame."""
        assert self._ref is not None
        return self._ref.dof_pos[:, 0] + self.cfg.residual_scale * self._pd_scale * actions.clamp(-1.0, 1.0)

    def env_action(self, targets: Tensor) -> Tensor:
        """PD targets (N, D) rad -> the equivalent :class:`HumanoidEnv` actions (N, D) in [-1, 1] (clamped)."""
        return ((targets - self._pd_offset) / self._pd_scale).clamp(-1.0, 1.0)

    def step_targets(self, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, dict]:
        """Step with PD targets (N, D) rad (clamped to what the env's actions can reach)."""
        b, cfg = self.backend, self.cfg
        b.set_pd_targets(self._pd_offset + self._pd_scale * self.env_action(targets))
        b.step(self.env.cfg.control_freq_inv)
        self.step_count += 1
        ref = self.reference([0, *self._obs_offsets])  # now, and the observed future frames
        reward, body_err, local_err = self.reward(ref.at(slice(0, 2)))
        blowup = b.diverged()
        terminate = (body_err > cfg.termination_error_m) & ~blowup
        time_out = ((self.step_count + self.step_offset) >= cfg.episode_length) | blowup
        time_out &= ~terminate
        done = terminate | time_out
        terminal_obs = self.observation(ref.at(slice(1, None)))
        # loop: a reference at its clip's last frame blends back into frame 0
        at_end = (self.k_start + (self.step_count - self.seg_t0)) >= self.grid.clip_len[self.clip] - 1
        at_end &= (self.step_count >= self.seg_t0) & ~done
        if self.maybe(at_end):
            self._start_blend(at_end, torch.zeros_like(self.k_start), from_sim=False)
        self._count_failures(done, terminate)
        self.reset_where(done)
        self.step_offset = torch.where(done, 0, self.step_offset)
        if self.dense or bool((done | at_end).any()):
            self._ref = self.reference(self._obs_offsets)
            obs = self.observation()
        else:
            self._ref = ref.at(slice(1, None))
            obs = terminal_obs
        reward = torch.where(blowup, torch.zeros_like(reward), reward)
        info = {"terminate": terminate, "time_out": time_out, "terminal_obs": terminal_obs, "body_error_m": body_err,
                "local_error_m": local_err}
        return obs, reward, done, info

    def _count_failures(self, done: Tensor, terminate: Tensor) -> None:
        """Running failure rate per clip: each ended episode moves its clip's rate 2 % towards 1 (terminated) or 0."""
        ended = torch.zeros_like(self.fail_rate).index_add_(0, self.clip, done.float())
        failed = torch.zeros_like(self.fail_rate).index_add_(0, self.clip, (terminate & done).float())
        keep = 0.98 ** ended
        self.fail_rate = self.fail_rate * keep + (1 - keep) * failed / ended.clamp_min(1.0)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, dict]:
        """Step with residual actions (N, D) in [-1, 1]."""
        return self.step_targets(self.pd_targets(actions))

    def reward(self, ref: ReferenceFrames) -> tuple[Tensor, Tensor, Tensor]:
        """Tracking reward (N,) of the current state against ``ref`` (offsets [0, 1]: now and next, the latter for
        reference velocities); also the mean body error (N,) m world and root-relative."""
        cfg, b = self.cfg, self.backend
        pos, brot = b.body_pos(), b.body_rot()
        dof, dof_vel = b.dof_pos(), b.dof_vel()
        r_pos, r_rot, r_dof = ref.body_pos[:, 0], ref.root_rot[:, 0], ref.dof_pos[:, 0]
        e_pose = (dof - r_dof).square().sum(-1)
        err = (pos - r_pos).norm(dim=-1)  # (N, B)
        sim_local = _local_positions(pos, brot[:, 0])
        ref_local = _local_positions(r_pos, r_rot)
        local_err = (sim_local - ref_local).norm(dim=-1)
        e_key = (pos[:, self._key_ids] - r_pos[:, self._key_ids]).square().sum(-1).sum(-1)
        e_root = (pos[:, 0] - r_pos[:, 0]).square().sum(-1) + 0.1 * rot.quat_angle_between(brot[:, 0], r_rot).square()
        ref_root_vel = (ref.root_pos[:, 1] - ref.root_pos[:, 0]) / self.dt
        e_root_vel = (b.body_vel()[:, 0] - ref_root_vel).square().sum(-1)
        ref_dof_vel = (ref.dof_pos[:, 1] - ref.dof_pos[:, 0]) / self.dt
        e_dof_vel = (dof_vel - ref_dof_vel).square().sum(-1)
        reward = (cfg.w_pose * torch.exp(-cfg.k_pose * e_pose)
                  + cfg.w_local * torch.exp(-cfg.k_local * local_err.square().mean(-1))
                  + cfg.w_key * torch.exp(-cfg.k_key * e_key)
                  + cfg.w_root * torch.exp(-cfg.k_root * e_root)
                  + cfg.w_root_vel * torch.exp(-cfg.k_root_vel * e_root_vel)
                  + cfg.w_dof_vel * torch.exp(-cfg.k_dof_vel * e_dof_vel))
        return reward, err.mean(-1), local_err.mean(-1)


def _local_positions(body_pos: Tensor, root_rot: Tensor) -> Tensor:
    """(N, B, 3) body positions relative to the root, in the root's heading frame, m."""
    n, nb = body_pos.shape[:2]
    h = rot.heading_quat_inverse(root_rot)[:, None].expand(n, nb, 4)
    return rot.quat_rotate(h, body_pos - body_pos[:, :1])
