"""`HumanoidEnv`: the humanoid task of the low-level controller, on any :class:`Backend`.

An IsaacGymEnvs/rl-games ``VecTask``-like environment of N humanoids (reference facts §1.2-§1.5, §2.5):

* **actions** (N, 28) in [-1, 1] (clamped) -> PD targets ``offset + scale * a`` (facts §1.3), held for
  ``control_freq_inv`` physics steps (4 x 1/120 s -> 30 Hz control);
* **observations** ``{"obs": (N, 223)}`` from :func:`anyskill.humanoid.obs.policy_obs` on the simulated body states;
* **AMP observations** ``extras["amp_obs"]`` (N, 10 * 125): the last 10 AMP frames
  (:func:`anyskill.humanoid.obs.amp_frame_obs`), newest first, ending at the state the step reached (before any
  reset), which is the transition's next state the discriminator scores;
* **resets** (automatic, inside :meth:`HumanoidEnv.step`; the returned obs of a done env is its new
  episode's first obs, ``extras["terminal_obs"]`` the obs of the state the step reached): default pose,
  reference state init from a :class:`MotionLibrary` ("start", "random", "hybrid"; ``extras["reset_clip"]`` /
  ``extras["reset_time"]`` say which clip and time an episode started from, -1 / 0 otherwise), a bank of fall
  states (probability ``fall_init_prob``), and recovery episodes (a fallen env keeps its state with probability
  ``recovery_episode_prob``); both fallen starts get ``recovery_steps`` control steps in which they cannot
  terminate, as in the reference get-up training;
* **terminations** (``extras["terminate"]``): the fall rule of facts §2.5 (``extras["fallen"]`` reports the rule
  even when early termination is off); **time-outs** (``extras["time_outs"]``, progress >= episode_length - 1;
  ``episode_length=None``: no time limit) are kept apart for value bootstrapping;
* **blow-up guard**: envs whose simulation diverged are reset, reported as time-outs (the policy did not
  cause them) and counted in ``extras["sim_blowups"]`` (this step) and ``extras["sim_blowups_total"]``;
* **scenes** (optional, :mod:`anyskill.sim.scene`): objects beside the humanoid, placed by the scene at every episode
  start (recovery episodes keep them where they are); they collide with the humanoid but stay out of the
  observations. Without a scene nothing of the above changes.

The reward is zero: the agent computes it (CALM from its discriminator, the high-level policy from CLIP).

Speed: the observation terms are ~250 small torch ops per control step. On small, shared CPU machines run
with ``torch.set_num_threads(1)``: intra-op threads gain nothing on these sizes, and under contention a
320 kB tensor copy was measured at 15 ms instead of 60 us. Measured rates are in ``results/bench.json``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from anyskill.config.sim import EnvConfig
from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel
from anyskill.humanoid.obs import amp_frame_obs, amp_obs_size, policy_obs, policy_obs_size
from anyskill.humanoid.skeleton import Skeleton
from anyskill.motion.library import MotionLibrary
from anyskill.sim import terms
from anyskill.sim.backend import Backend
from anyskill.sim.scene import Scene

Tensor = torch.Tensor

_SNAPSHOT_TENSORS = ("progress", "recovery_counter", "amp_obs_history", "reset_clip", "reset_time", "reset_default")


class HumanoidEnv:
    """N humanoids with the VecTask-like API of IsaacGymEnvs / rl-games (see the module docstring).

    Args:
        cfg: the settings.
        motion_lib: reference motions; required when ``cfg.state_init`` is not "default".
        model: the humanoid (default: the bundled one).
        backend: the physics (default: a :class:`MujocoBackend` with ``cfg.num_envs`` worlds of the humanoid, or of
            ``scene``'s model).
        scene: objects beside the humanoid (the backend must simulate ``scene.mj_model()``).
    """

    def __init__(
        self,
        cfg: EnvConfig,
        motion_lib: MotionLibrary | None = None,
        model: HumanoidModel | None = None,
        backend: Backend | None = None,
        scene: Scene | None = None,
    ):
        if cfg.state_init != "default" and motion_lib is None:
            raise ValueError(f"state_init={cfg.state_init!r} needs a motion_lib; pass one or use state_init='default'")
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        if backend is None:
            from anyskill.sim.mujoco_backend import MujocoBackend

            backend = MujocoBackend(
                cfg.num_envs,
                model,
                mj_model=scene.mj_model(model) if scene is not None else None,
                device=self.device,
                num_threads=cfg.num_threads,
                self_collision=cfg.self_collision,
                integrator=cfg.integrator,
            )
        if backend.num_envs != cfg.num_envs:
            raise ValueError(f"backend has {backend.num_envs} worlds but cfg.num_envs is {cfg.num_envs}")
        expected = scene.object_qpos_size if scene is not None else 0
        if backend.object_qpos().shape[-1] != expected:
            raise ValueError(f"the backend simulates {backend.object_qpos().shape[-1]} object coordinates but "
                             + (f"scene {scene.name!r} has {expected}; build it from scene.mj_model()" if scene
                                else "no scene was given; pass the scene its model was built from"))
        self.backend = backend
        self.scene = scene
        self.model = backend.model
        self.motion_lib = motion_lib
        self.skeleton = Skeleton(self.model)
        self.dt = cfg.control_freq_inv * backend.physics_dt  # s per control step

        m = self.model
        self.num_envs = cfg.num_envs
        self.num_actions = m.num_dofs
        self.num_obs = policy_obs_size(m.num_bodies)
        self.num_amp_obs_per_step = amp_obs_size(len(m.joints), m.num_dofs, len(m.key_body_ids))
        self.num_amp_obs = cfg.num_amp_obs_steps * self.num_amp_obs_per_step
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_obs,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.num_actions,), np.float32)
        self.amp_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_amp_obs,), np.float32)

        dev: dict[str, Any] = dict(device=self.device)
        offset, scale = m.pd_offset_scale
        self._pd_offset = torch.as_tensor(offset, dtype=torch.float32, **dev)
        self._pd_scale = torch.as_tensor(scale, dtype=torch.float32, **dev)
        self._key_body_ids = torch.as_tensor(m.key_body_ids, dtype=torch.long, **dev)
        self._joint_bodies = torch.as_tensor([j.body for j in m.joints], dtype=torch.long, **dev)
        self._joint_parents = torch.as_tensor(m.parents[[j.body for j in m.joints]], dtype=torch.long, **dev)
        self._fall_bodies = terms.non_contact_body_mask(m).to(self.device)
        self._term_heights = terms.termination_heights(m, cfg.termination_height).to(self.device)
        self._gen = torch.Generator(self.device).manual_seed(cfg.seed)

        n = self.num_envs
        self.progress = torch.zeros(n, dtype=torch.long, **dev)
        self.recovery_counter = torch.zeros(n, dtype=torch.long, **dev)
        self.amp_obs_history = torch.zeros(n, cfg.num_amp_obs_steps, self.num_amp_obs_per_step, **dev)
        self.reset_clip = torch.full((n,), -1, dtype=torch.long, **dev)
        """(N,) clip each env's current episode started from in the last step or reset (-1: not from a clip)."""
        self.reset_time = torch.zeros(n, **dev)
        """(N,) s, the clip time of that start."""
        self.reset_default = torch.zeros(n, dtype=torch.bool, **dev)
        """(N,) bool, the episode started from the default pose in the last step or reset."""
        self.sim_blowups_total = 0
        self._fall_states: dict[str, Tensor] | None = None
        if cfg.fall_init_prob > 0:
            self._fall_states = self._build_fall_states(cfg.num_fall_states or n)

    # ------------------------------------------------------------------ VecTask API
    def reset(self) -> dict[str, Tensor]:
        """Reset every env; returns ``{"obs": (N, 223)}``."""
        ids = torch.arange(self.num_envs, device=self.device)
        self.recovery_counter.zero_()
        self.reset_clip.fill_(-1)
        self.reset_time.zero_()
        self.reset_default.zero_()
        self.reset_envs(ids, torch.zeros_like(ids, dtype=torch.bool))
        return {"obs": self.policy_observation()}

    def step(self, actions: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, dict]:
        """Apply (N, 28) actions for one control step; returns obs dict, reward (N,) zeros, dones (N,), extras.

        extras: ``terminate`` (N,) bool (fall rule, with early termination on), ``fallen`` (N,) bool (the fall rule
        on the reached state, also when early termination is off), ``time_outs`` (N,) bool (time limit or blow-up),
        ``terminal_obs`` (N, 223) policy obs of the reached state (before resets; for value bootstrapping),
        ``amp_obs`` (N, 10 * 125) AMP history ending at the reached state, ``reset_clip`` (N,) long / ``reset_time``
        (N,) s: clip and time a new episode started from (-1 / 0 where no episode started from a clip this step),
        ``reset_default`` (N,) bool: a new episode started from the default pose,
        ``sim_blowups`` / ``sim_blowups_total`` (int).
        """
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        if actions.shape != (self.num_envs, self.num_actions):
            raise ValueError(f"actions must have shape ({self.num_envs}, {self.num_actions}), got "
                             f"{tuple(actions.shape)}")
        self.backend.set_pd_targets(self.action_to_pd_target(actions))
        self.backend.step(self.cfg.control_freq_inv)
        self.progress += 1
        self.recovery_counter = (self.recovery_counter - 1).clamp_min(0)

        frame = self.current_amp_obs()
        self.amp_obs_history = torch.cat([frame[:, None], self.amp_obs_history[:, :-1]], dim=1)
        blowup = self.backend.diverged() | ~torch.isfinite(frame).all(-1)
        recovering = self.recovery_counter > 0
        body_pos = self.backend.body_pos()
        fallen = terms.has_fallen(
            self.backend.body_contact_force(), body_pos[..., 2], self._term_heights, self._fall_bodies, self.progress
        ) & ~blowup
        terminate = fallen & ~recovering if self.cfg.enable_early_termination else torch.zeros_like(fallen)
        time_out = (terms.timed_out(self.progress, self.cfg.episode_length) & ~recovering & ~terminate) | blowup
        dones = terminate | time_out
        amp_obs = self.amp_obs_history.flatten(1).clone()  # resets below rewrite the history
        terminal_obs = self.policy_observation()
        obs = terminal_obs

        self.reset_clip.fill_(-1)
        self.reset_time.zero_()
        self.reset_default.zero_()
        done_ids = dones.nonzero().squeeze(-1)
        if done_ids.numel():
            self.reset_envs(done_ids, terminate[done_ids])
            amp_obs[blowup] = self.amp_obs_history[blowup].flatten(1)
            obs = terminal_obs.clone()
            obs[done_ids] = self.policy_observation(done_ids)
            terminal_obs = torch.where(blowup[:, None], obs, terminal_obs)
        num_blowups = int(blowup.sum())
        self.sim_blowups_total += num_blowups
        extras = {
            "terminate": terminate,
            "fallen": fallen,
            "time_outs": time_out,
            "terminal_obs": terminal_obs,
            "amp_obs": amp_obs,
            "reset_clip": self.reset_clip.clone(),
            "reset_time": self.reset_time.clone(),
            "reset_default": self.reset_default.clone(),
            "sim_blowups": num_blowups,
            "sim_blowups_total": self.sim_blowups_total,
        }
        reward = torch.zeros(self.num_envs, device=self.device)
        return {"obs": obs}, reward, dones, extras

    def action_to_pd_target(self, actions: Tensor) -> Tensor:
        """(N, D) actions, clamped to [-1, 1] -> (N, D) PD targets, rad (facts §1.3). Note that action 0 bends
        elbows and knees to mid-range; the straight standing pose is :attr:`rest_action`."""
        return self._pd_offset + self._pd_scale * actions.clamp(-1.0, 1.0)

    @property
    def rest_action(self) -> Tensor:
        """(D,) the action whose PD targets are all zero: the straight standing pose of the default state."""
        return torch.as_tensor(self.model.rest_action, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ observations
    def policy_observation(self, env_ids: Tensor | None = None) -> Tensor:
        """(N, 223), or (M, 223) for ``env_ids``: the policy observation of the current simulated state."""
        b = self.backend
        if env_ids is None:
            return policy_obs(b.body_pos(), b.body_rot(), b.body_vel(), b.body_ang_vel())
        return policy_obs(b.body_pos()[env_ids], b.body_rot()[env_ids], b.body_vel()[env_ids],
                          b.body_ang_vel()[env_ids])

    def current_amp_obs(self, env_ids: Tensor | None = None) -> Tensor:
        """(N, 125), or (M, 125) for ``env_ids``: the AMP frame of the current simulated state.

        Joint rotations are the simulated parent-relative body rotations (equal to composing the hinges,
        as ``tests/test_env.py`` checks against the motion library) at a fraction of the cost.
        """
        b = self.backend
        sel = slice(None) if env_ids is None else env_ids
        body_pos = b.body_pos()[sel]
        body_rot = b.body_rot()[sel]
        # index_select, not body_rot[:, ids]: torch's advanced indexing with repeated ids is ~1000x slower on CPU
        parent_rot = body_rot.index_select(1, self._joint_parents)
        joint_rot = rot.quat_mul(rot.quat_conjugate(parent_rot), body_rot.index_select(1, self._joint_bodies))
        return amp_frame_obs(
            self.skeleton,
            body_pos[:, 0],
            body_rot[:, 0],
            b.body_vel()[sel][:, 0],
            b.body_ang_vel()[sel][:, 0],
            b.dof_pos()[sel],
            b.dof_vel()[sel],
            body_pos.index_select(1, self._key_body_ids),
            joint_rot=joint_rot,
        )

    # ------------------------------------------------------------------ resets
    def reset_envs(self, env_ids: Tensor, fell: Tensor) -> None:
        """Start new episodes in ``env_ids`` (M,); ``fell`` (M,) bool marks envs that ended by falling."""
        cfg = self.cfg
        self.progress[env_ids] = 0
        recover = fell & (self._rand(len(env_ids)) < cfg.recovery_episode_prob)
        self.recovery_counter[env_ids[recover]] = cfg.recovery_steps
        ids = env_ids[~recover]
        if not len(ids):
            return
        self.recovery_counter[ids] = 0
        from_bank = torch.zeros(len(ids), dtype=torch.bool, device=self.device)
        if self._fall_states is not None:
            from_bank = self._rand(len(ids)) < cfg.fall_init_prob
        if cfg.state_init == "default":
            from_clip = torch.zeros_like(from_bank)
        elif cfg.state_init == "hybrid":
            from_clip = self._rand(len(ids)) < cfg.hybrid_init_prob
        else:
            from_clip = torch.ones_like(from_bank)
        from_clip &= ~from_bank
        self._reset_default(ids[~from_bank & ~from_clip])
        self._reset_from_bank(ids[from_bank])
        self.recovery_counter[ids[from_bank]] = cfg.recovery_steps  # a fallen start may get up before it can fail
        self._place_objects(ids)
        if from_clip.any():
            lib = self.motion_lib
            assert lib is not None  # the constructor requires one unless state_init is "default"
            clip_ids = lib.sample_clips(int(from_clip.sum()), generator=self._lib_gen())
            if cfg.state_init == "start":
                times = torch.zeros(len(clip_ids), device=lib.device)
            else:
                times = lib.sample_times(clip_ids, generator=self._lib_gen())
            self._reset_from_clip(ids[from_clip], clip_ids, times)

    def start_from_reference(self, env_ids: Tensor, clip_ids: Tensor, times: Tensor) -> None:
        """Start fresh episodes in ``env_ids`` (M,) from the reference states of clips ``clip_ids`` (M,) at ``times``
        (M,) s, with the clips' AMP histories (no recovery period)."""
        if not (len(env_ids) == len(clip_ids) == len(times)):
            raise ValueError(f"need one clip and time per env: {len(env_ids)} env ids, {len(clip_ids)} clip ids, "
                             f"{len(times)} times")
        if self.motion_lib is None:
            raise ValueError("start_from_reference needs an env built with a motion_lib")
        env_ids = torch.as_tensor(env_ids, dtype=torch.long, device=self.device)
        self.progress[env_ids] = 0
        self.recovery_counter[env_ids] = 0
        self._reset_from_clip(env_ids, torch.as_tensor(clip_ids, device=self.motion_lib.device),
                              torch.as_tensor(times, dtype=torch.float32, device=self.motion_lib.device))
        self._place_objects(env_ids)

    def _place_objects(self, ids: Tensor) -> None:
        """The scene's placement of its objects in envs ``ids`` (random when the scene has jitter)."""
        if self.scene is None or not len(ids):
            return
        qpos, qvel = self.scene.initial_object_state(len(ids), self._gen)
        self.backend.set_object_state(ids, qpos.to(self.device), qvel.to(self.device))

    def _reset_default(self, ids: Tensor) -> None:
        m = len(ids)
        if not m:
            return
        root_pos = torch.zeros(m, 3, device=self.device)
        root_pos[:, 2] = self.cfg.spawn_height
        root_rot = torch.zeros(m, 4, device=self.device)
        root_rot[:, 0] = 1.0
        zeros3 = torch.zeros(m, 3, device=self.device)
        zeros_d = torch.zeros(m, self.num_actions, device=self.device)
        self.backend.set_state(ids, root_pos, root_rot, zeros3, zeros3, zeros_d, zeros_d)
        self._fill_history_with_current(ids)
        self.reset_default[ids] = True

    def _reset_from_bank(self, ids: Tensor) -> None:
        m = len(ids)
        if not m:
            return
        bank = self._fall_states
        assert bank is not None  # only called when the bank was built
        pick = torch.randint(len(bank["root_pos"]), (m,), generator=self._gen, device=self.device)
        zeros3 = torch.zeros(m, 3, device=self.device)
        zeros_d = torch.zeros(m, self.num_actions, device=self.device)
        self.backend.set_state(ids, bank["root_pos"][pick], bank["root_rot"][pick], zeros3, zeros3,
                               bank["dof_pos"][pick], zeros_d)
        self._fill_history_with_current(ids)

    def _reset_from_clip(self, ids: Tensor, clip_ids: Tensor, times: Tensor) -> None:
        if not len(ids):
            return
        lib = self.motion_lib
        assert lib is not None  # checked by the callers
        s = lib.state_at(clip_ids, times)
        dev = self.device
        self.backend.set_state(
            ids, s.root_pos.to(dev), s.root_rot.to(dev), s.root_vel.to(dev), s.root_ang_vel.to(dev), s.dof_pos.to(dev),
            s.dof_vel.to(dev)
        )
        window = lib.amp_obs_window(clip_ids, times, self.cfg.num_amp_obs_steps, self.dt)
        self.amp_obs_history[ids] = window.to(dev, torch.float32)
        self.reset_clip[ids] = clip_ids.to(dev)
        self.reset_time[ids] = times.to(dev, torch.float32)

    def _fill_history_with_current(self, ids: Tensor) -> None:
        frame = self.current_amp_obs(ids)
        self.amp_obs_history[ids] = frame[:, None].expand(-1, self.cfg.num_amp_obs_steps, -1)

    # ------------------------------------------------------------------ snapshots (exact resume)
    def snapshot(self) -> dict[str, Any]:
        """Everything that decides the env's future under the same actions: the backend's physics state, episode
        counters, AMP histories, reset records, the fall-state bank and the random generator (CPU tensors)."""
        state = {k: getattr(self, k).detach().cpu().clone() for k in _SNAPSHOT_TENSORS}
        state["backend"] = self.backend.snapshot()
        state["generator"] = self._gen.get_state()
        state["sim_blowups_total"] = self.sim_blowups_total
        bank = self._fall_states
        state["fall_states"] = None if bank is None else {k: v.cpu().clone() for k, v in bank.items()}
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Return to a :meth:`snapshot` of an env with the same configuration."""
        for k in _SNAPSHOT_TENSORS:
            if tuple(state[k].shape) != tuple(getattr(self, k).shape):
                raise ValueError(f"snapshot field {k!r} has shape {tuple(state[k].shape)}, this env needs "
                                 f"{tuple(getattr(self, k).shape)}: restore into an env of the same size")
            setattr(self, k, state[k].to(self.device).clone())
        self.backend.restore(state["backend"])
        self._gen.set_state(state["generator"])
        self.sim_blowups_total = int(state["sim_blowups_total"])
        if state["fall_states"] is not None:
            self._fall_states = {k: v.to(self.device).clone() for k, v in state["fall_states"].items()}

    def _rand(self, n: int) -> Tensor:
        return torch.rand(n, generator=self._gen, device=self.device)

    def _lib_gen(self) -> torch.Generator | None:
        """The env's generator when the motion library samples on the same device, else the library's default."""
        assert self.motion_lib is not None
        return self._gen if self.motion_lib.device == self.device else None

    def _build_fall_states(self, count: int) -> dict[str, Tensor]:
        """Bank of ``count`` fallen poses (facts §2.5): random root orientation at spawn height, random PD
        targets (actions U(-0.5, 0.5)) for ``fall_settle_steps`` physics steps; velocities are dropped."""
        n, b = self.num_envs, self.backend
        ids = torch.arange(n, device=self.device)
        banks: dict[str, list[Tensor]] = {"root_pos": [], "root_rot": [], "dof_pos": []}
        made = 0
        while made < count:
            root_pos = torch.zeros(n, 3, device=self.device)
            root_pos[:, 2] = self.cfg.spawn_height
            root_rot = terms.random_unit_quaternions(n, self._gen, self.device)
            zeros3 = torch.zeros(n, 3, device=self.device)
            zeros_d = torch.zeros(n, self.num_actions, device=self.device)
            b.set_state(ids, root_pos, root_rot, zeros3, zeros3, zeros_d, zeros_d)
            actions = torch.rand(n, self.num_actions, generator=self._gen, device=self.device) - 0.5
            b.set_pd_targets(self.action_to_pd_target(actions))
            b.step(self.cfg.fall_settle_steps)
            ok = ~b.diverged()
            root = b.root_state()[ok]
            banks["root_pos"].append(root[:, :3])
            banks["root_rot"].append(root[:, 3:7])
            banks["dof_pos"].append(b.dof_pos()[ok])
            made += int(ok.sum())
        return {k: torch.cat(v)[:count].clone() for k, v in banks.items()}

    @property
    def fall_states(self) -> dict[str, Tensor] | None:
        """The fall-state bank: root_pos (F, 3) m, root_rot (F, 4) wxyz, dof_pos (F, 28) rad; None if not built."""
        return self._fall_states
