"""The motion-tracking task of the tracker π_T(a | s, reference) (first stage of the CPU route, LLC-ROUTES.md).

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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anyskill.config.tracking import TrackingConfig
from anyskill.humanoid import rotations as rot
from anyskill.humanoid.obs import policy_obs
from anyskill.motion.library import MotionLibrary
from anyskill.sim.env import EnvConfig, HumanoidEnv

Tensor = torch.Tensor
HEAD = "head"


class ReferenceGrid:
    """Every clip's pose at the control rate: root_pos (G, 3) m, root_rot (G, 4) wxyz, dof_pos (G, D) rad, clip
    frame ranges clip_start / clip_len (C,) long. Row layout is that of :class:`~anyskill.motion.frame_grid.
    AmpFrameGrid` at the same ``dt``, so a row indexes both."""

    def __init__(self, lib: MotionLibrary, dt: float):
        lengths = torch.floor(lib.durations.double() / dt + 1e-6).long() + 1
        clip_of = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
        start = torch.cumsum(lengths, 0) - lengths
        k = torch.arange(len(clip_of)) - start[clip_of]
        times = (k.double() * dt).float().minimum(lib.durations.cpu()[clip_of])
        s = lib.state_at(clip_of.to(lib.device), times.to(lib.device))
        self.root_pos, self.root_rot, self.dof_pos = s.root_pos.cpu(), s.root_rot.cpu(), s.dof_pos.cpu()
        self.clip_start, self.clip_len, self.clip_of, self.dt = start, lengths, clip_of, dt


def yaw_quat(yaw: Tensor) -> Tensor:
    """(N,) rad -> (N, 4) wxyz rotations about z."""
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


class TrackingEnv:
    """N humanoids tracking reference timelines (module docstring); batched torch on the CPU.

    ``reset() -> obs (N, num_obs)``; ``step(actions (N, 28)) -> obs, reward (N,), done (N,), info`` with info
    ``terminate`` / ``time_out`` (N,) bool, ``terminal_obs`` (N, num_obs) (the reached state's observation before
    resets), ``body_error_m`` (N,) mean body position error (world) and ``local_error_m`` (N,) root-relative.
    """

    def __init__(self, cfg: TrackingConfig, motion_lib: MotionLibrary):
        self.cfg = cfg
        self.lib = motion_lib
        self.env = HumanoidEnv(
            EnvConfig(num_envs=cfg.num_envs, state_init="random", fall_init_prob=0.0, recovery_episode_prob=0.0,
                      episode_length=None, enable_early_termination=False, seed=cfg.seed, device=cfg.device,
                      num_threads=cfg.num_threads),
            motion_lib=motion_lib)
        env = self.env
        self.num_envs, self.dt, self.model = cfg.num_envs, env.dt, env.model
        self.skeleton = env.skeleton
        self.grid = ReferenceGrid(motion_lib, self.dt)
        self.num_actions = env.num_actions
        nb = self.model.num_bodies
        self.frame_obs_dim = 3 * nb + 3 * (nb - 1) + 1 + 6 + self.num_actions
        self.num_obs = env.num_obs + cfg.future_frames * self.frame_obs_dim
        self._key_ids = torch.tensor(list(self.model.key_body_ids) + [self.model.body_index(HEAD)])
        self._pd_offset, self._pd_scale = env._pd_offset, env._pd_scale
        self._gen = torch.Generator().manual_seed(cfg.seed + 7)
        n, d = cfg.num_envs, self.num_actions
        self.clip = torch.zeros(n, dtype=torch.long)
        self.k_start = torch.zeros(n, dtype=torch.long)
        self.seg_t0 = torch.zeros(n, dtype=torch.long)
        """(N,) step at which the clip part of the current segment begins (blend before it)."""
        self.blend = torch.zeros(n, dtype=torch.long)
        self.step_count = torch.zeros(n, dtype=torch.long)
        self.from_root_pos = torch.zeros(n, 3)
        self.from_root_rot = torch.zeros(n, 4)
        self.from_dof = torch.zeros(n, d)
        self.anchor_yaw = torch.zeros(n)
        self.anchor_p0 = torch.zeros(n, 3)
        self.anchor_off = torch.zeros(n, 3)
        self.step_offset = torch.zeros(n, dtype=torch.long)
        self.fail_rate = torch.full((motion_lib.num_clips,), 0.5)
        self._ref: ReferenceFrames | None = None

    # ------------------------------------------------------------------ reference timeline
    def _aligned(self, env_ids: Tensor, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Grid rows (M,) placed by the anchors of envs ``env_ids`` (M,): root_pos (M, 3), root_rot (M, 4), dof."""
        g = self.grid
        q = yaw_quat(self.anchor_yaw[env_ids])
        p = rot.quat_rotate(q, g.root_pos[rows] - self.anchor_p0[env_ids]) + self.anchor_off[env_ids]
        return p, rot.quat_mul(q, g.root_rot[rows]), g.dof_pos[rows]

    def clip_row(self, env_ids: Tensor, offset: int | Tensor = 0) -> Tensor:
        """(M,) grid row the reference of envs ``env_ids`` is at ``offset`` steps from now (the clip frame being
        blended into during a blend), clamped to the clip's last frame."""
        s = self.step_count[env_ids] + offset
        k = (self.k_start[env_ids] + (s - self.seg_t0[env_ids]).clamp_min(0)).minimum(
            self.grid.clip_len[self.clip[env_ids]] - 1)
        return self.grid.clip_start[self.clip[env_ids]] + k

    def reference(self, offsets: list[int]) -> ReferenceFrames:
        """Reference poses of all envs at ``offsets`` steps from now (module docstring)."""
        n, o = self.num_envs, len(offsets)
        ids = torch.arange(n).repeat_interleave(o)
        off = torch.tensor(offsets).repeat(n)
        s = self.step_count[ids] + off
        root_pos, root_rot, dof = self._aligned(ids, self.clip_row(ids, off))
        blend_len = self.blend[ids]
        in_blend = s < self.seg_t0[ids]
        if bool(in_blend.any()):
            alpha = ((s - (self.seg_t0[ids] - blend_len)).float() / blend_len.clamp_min(1).float()).clamp(0.0, 1.0)
            a = torch.where(in_blend, alpha, torch.ones_like(alpha))
            root_pos = torch.lerp(self.from_root_pos[ids], root_pos, a[:, None])
            root_rot = rot.quat_slerp(self.from_root_rot[ids], root_rot, a)
            dof = torch.lerp(self.from_dof[ids], dof, a[:, None])
        body_pos, body_rot = self.skeleton.forward_kinematics(root_pos, root_rot, dof)
        return ReferenceFrames(root_pos.reshape(n, o, 3), root_rot.reshape(n, o, 4), dof.reshape(n, o, -1),
                               body_pos.reshape(n, o, *body_pos.shape[1:]), body_rot.reshape(n, o, *body_rot.shape[1:]))

    def _anchor_to_character(self, ids: Tensor, rows: Tensor) -> None:
        """Anchor the clips of envs ``ids`` so that grid rows ``rows`` sit at the character's heading and ground
        position."""
        b = self.env.backend
        root_rot = b.body_rot()[ids, 0]
        root_pos = b.body_pos()[ids, 0]
        clip_yaw = rot.heading_angle(self.grid.root_rot[rows])
        self.anchor_yaw[ids] = rot.heading_angle(root_rot) - clip_yaw
        p0 = self.grid.root_pos[rows].clone()
        p0[:, 2] = 0.0
        off = root_pos.clone()
        off[:, 2] = 0.0
        self.anchor_p0[ids], self.anchor_off[ids] = p0, off

    def _start_blend(self, ids: Tensor, k0: Tensor, from_sim: bool) -> None:
        """Begin a segment in envs ``ids``: blend over ``blend_steps`` from the character's pose (``from_sim``) or
        from the reference's current pose into clip frame ``k0`` (M,), anchored at the character."""
        if from_sim:
            b = self.env.backend
            self.from_root_pos[ids] = b.body_pos()[ids, 0]
            self.from_root_rot[ids] = b.body_rot()[ids, 0]
            self.from_dof[ids] = b.dof_pos()[ids]
        else:
            p, q, d = self._aligned(ids, self.clip_row(ids))
            self.from_root_pos[ids], self.from_root_rot[ids], self.from_dof[ids] = p, q, d
        rows = self.grid.clip_start[self.clip[ids]] + k0
        self._anchor_to_character(ids, rows)
        # keep the blended root height of the reference: the anchor moves the clip only on the ground plane
        self.k_start[ids] = k0
        self.blend[ids] = self.cfg.blend_steps
        self.seg_t0[ids] = self.step_count[ids] + self.cfg.blend_steps

    # ------------------------------------------------------------------ episodes
    def _clip_probs(self) -> Tensor:
        w = self.lib.weights.cpu().float()
        if self.cfg.failure_weighting > 0:
            f = self.cfg.failure_weighting
            w = w * ((1 - f) + f * (self.fail_rate + 0.05))
        return w / w.sum()

    def reset_envs(self, ids: Tensor, clips: Tensor | None = None, standing: Tensor | None = None,
                   k0: Tensor | None = None) -> None:
        """New episodes in envs ``ids`` (M,): clips drawn by failure-weighted probability (or ``clips``), standing
        starts with probability ``standing_start_prob`` (or the bool mask ``standing``), start frames drawn (or
        ``k0``: grid frame within the clip)."""
        m = len(ids)
        if not m:
            return
        cfg, g = self.cfg, self.grid
        if clips is None:
            clips = torch.multinomial(self._clip_probs(), m, replacement=True, generator=self._gen)
        if standing is None:
            standing = torch.rand(m, generator=self._gen) < cfg.standing_start_prob
        if k0 is None:
            u = torch.rand(m, generator=self._gen)
            k0 = (u * g.clip_len[clips].float()).long().minimum(g.clip_len[clips] - 1)
            first = torch.rand(m, generator=self._gen) < cfg.first_frame_prob
            k0 = torch.where(standing & first, torch.zeros_like(k0), k0)
        self.clip[ids] = clips
        self.step_count[ids] = 0
        rsi = ids[~standing]
        if len(rsi):
            times = k0[~standing].float() * self.dt
            durations = self.lib.durations.cpu()[clips[~standing]]
            self.env.start_from_reference(rsi, clips[~standing], times.minimum(durations))
            self.anchor_yaw[rsi] = 0.0
            self.anchor_p0[rsi] = 0.0
            self.anchor_off[rsi] = 0.0
            self.k_start[rsi] = k0[~standing]
            self.blend[rsi] = 0
            self.seg_t0[rsi] = 0
        st = ids[standing]
        if len(st):
            self.env._reset_default(st)
            self._start_blend(st, k0[standing], from_sim=True)

    def reset(self) -> Tensor:
        self.reset_envs(torch.arange(self.num_envs))
        # stagger the first episodes so that time-outs do not come all at once
        self.step_offset = torch.randint(0, self.cfg.episode_length, (self.num_envs,), generator=self._gen)
        self._ref = self.reference(list(range(1, self.cfg.future_frames + 1)))
        return self.observation()

    # ------------------------------------------------------------------ observation, step, reward
    def observation(self) -> Tensor:
        """(N, num_obs): the 223-D policy obs and, per future reference frame, 3B + 3(B-1) + 1 + 6 + D values."""
        b = self.env.backend
        sim_pos, sim_rot = b.body_pos(), b.body_rot()
        prop = policy_obs(sim_pos, sim_rot, b.body_vel(), b.body_ang_vel())
        assert self._ref is not None
        return torch.cat([prop, self.reference_features(self._ref, sim_pos, sim_rot)], -1)

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
        b = self.env.backend
        targets = self._pd_offset + self._pd_scale * self.env_action(targets)
        b.set_pd_targets(targets)
        b.step(self.env.cfg.control_freq_inv)
        self.step_count += 1
        ref_now = self.reference([0, 1])
        reward, body_err, local_err = self.reward(ref_now)
        blowup = b.diverged()
        cfg = self.cfg
        terminate = (body_err > cfg.termination_error_m) & ~blowup
        time_out = ((self.step_count + self.step_offset) >= cfg.episode_length) | blowup
        time_out &= ~terminate
        done = terminate | time_out
        self._ref = self.reference(list(range(1, cfg.future_frames + 1)))
        terminal_obs = self.observation()
        obs = terminal_obs
        # loop: a reference at its clip's last frame blends back into frame 0
        at_end = (self.k_start + (self.step_count - self.seg_t0)) >= self.grid.clip_len[self.clip] - 1
        at_end &= (self.step_count >= self.seg_t0) & ~done
        if bool(at_end.any()):
            ids = at_end.nonzero().squeeze(-1)
            self._start_blend(ids, torch.zeros_like(ids), from_sim=False)
        done_ids = done.nonzero().squeeze(-1)
        if len(done_ids):
            clips = self.clip[done_ids]
            fail = terminate[done_ids].float()
            self.fail_rate.index_put_((clips,), 0.98 * self.fail_rate[clips] + 0.02 * fail)
            self.reset_envs(done_ids)
            self.step_offset[done_ids] = 0
        if len(done_ids) or bool(at_end.any()):
            self._ref = self.reference(list(range(1, cfg.future_frames + 1)))
            obs = self.observation()
        reward = torch.where(blowup, torch.zeros_like(reward), reward)
        info = {"terminate": terminate, "time_out": time_out, "terminal_obs": terminal_obs, "body_error_m": body_err,
                "local_error_m": local_err}
        return obs, reward, done, info

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, dict]:
        """Step with residual actions (N, D) in [-1, 1]."""
        return self.step_targets(self.pd_targets(actions))

    def reward(self, ref: ReferenceFrames) -> tuple[Tensor, Tensor, Tensor]:
        """Tracking reward (N,) of the current state against ``ref`` (offsets [0, 1]: now and next, the latter for
        reference velocities); also the mean body error (N,) m world and root-relative."""
        cfg, b = self.cfg, self.env.backend
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
