"""`HighLevelEnv`: the high-level policy's environment (paper §3.2, Algorithm 1) on top of a frozen LLC.

One step of the high-level policy π_H (6 Hz):

1. its 64-D action a (rl-games: tanh'd mean + noise, clamped to [-1, 1]) becomes a latent z on S^63 as
   ``HLCEnvConfig.latent_action`` says (:func:`anyskill.llc.prior.latent_from_action`): "free" (the paper's)
   z = normalize(a); "anchored" z = normalize(μ_p(s) + σ a) around the controller's latent prior μ_p
   (:mod:`anyskill.llc.prior`) at the state s where the step starts, so that an untrained π_H already sends latents
   of real motions (issue 27); "anchored_previous" z = normalize(z_prev + σ a) around the env's previous latent
   (from the prior at an episode's first step; π_H does not observe z_prev);
2. z is held for ``llc_steps`` (5) steps of the frozen low-level controller (30 Hz), which acts deterministically,
   ``a = π_L(s, z)`` (its own observation normaliser applied inside);
3. after every LLC step the goal scores the frame (``goal.similarity``, the cos(f_I, f_d) of Eq. 3) and the
   early-termination rules run (:class:`anyskill.reward.early_termination.EarlyTermination`: similarity
   decreases, head below 0.15 m);
4. the reward is :func:`anyskill.reward.similarity.hlc_reward` (Eq. 3, or the authors' variant, optionally with
   a velocity term) of the similarities of the LLC steps of this episode, with fixed reference latents Z = LLC
   encodings of K random 2-s windows of the motion library. A goal with memory across frames (a temporal window,
   :mod:`anyskill.hlc.variant_goals`) is told through ``goal.reset_envs(ids)`` which envs restarted.

Scenes (paper §4.4): with ``scene`` set, every env holds that scene's objects (:mod:`anyskill.sim.scene`), placed
at each episode start; the policy still observes only the humanoid, the goal sees the objects only in rendered
frames, and with ``record_states`` the infos also carry the objects' velocities and contacts.

Episodes: an env ends at the first LLC step that triggers early termination (**terminate**: no value bootstrap;
a similarity reset is a **time-out** instead with ``EarlyTerminationConfig.similarity_end="truncate"``) or reaches
``episode_length`` LLC steps or blows up numerically (**time-out**: bootstrapped). The LLC steps left
in that HLC step are simulated (the batch moves together) but not scored; the env is then reset, so the returned
observation of a done env is its new episode's first observation, as in :class:`HumanoidEnv`.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch

from anyskill.config.hlc import HLCEnvConfig
from anyskill.hlc.goal import Goal, HumanoidStates
from anyskill.llc.controller import LowLevelController
from anyskill.llc.prior import LatentPrior, latent_from_action, latent_prior
from anyskill.motion.library import MotionLibrary
from anyskill.reward.early_termination import EarlyTermination
from anyskill.reward.similarity import hlc_reward
from anyskill.sim.env import EnvConfig, HumanoidEnv
from anyskill.sim.scene import get_scene

Tensor = torch.Tensor


class HighLevelEnv:
    """N humanoids driven by a frozen LLC through latents z; VecTask-like API (see the module docstring).

    Args:
        cfg: the settings.
        llc: the frozen low-level controller.
        goal: what the frames are scored against (:mod:`anyskill.hlc.goal`).
        motion_lib: reference motions for the reference latents and reference state init (default: bundled).
        backend: the physics (default: MuJoCo, ``cfg.num_envs`` worlds of the humanoid or of ``cfg.scene``).
        prior: the latent prior of an anchored latent action (default: the controller's on ``motion_lib``, fitted
            once and cached, :func:`anyskill.llc.prior.latent_prior`); unused with ``latent_action="free"``.
    """

    def __init__(self, cfg: HLCEnvConfig, llc: LowLevelController, goal: Goal,
                 motion_lib: MotionLibrary | None = None, backend=None, prior: LatentPrior | None = None):
        if motion_lib is None:
            from anyskill.data import default_library

            motion_lib = default_library()
        self.cfg = cfg
        self.llc = llc.to(cfg.device).eval()
        self.goal = goal
        self.device = torch.device(cfg.device)
        self.scene = get_scene(cfg.scene, cfg.scene_jitter) if cfg.scene is not None else None
        self.env = HumanoidEnv(
            # this env owns the episode clock: the inner env has no time limit and no fall rule
            EnvConfig(num_envs=cfg.num_envs, episode_length=None, state_init=cfg.state_init,
                      hybrid_init_prob=cfg.hybrid_init_prob, fall_init_prob=0.0, recovery_episode_prob=0.0,
                      enable_early_termination=False, seed=cfg.seed, device=cfg.device, num_threads=cfg.num_threads),
            motion_lib=motion_lib,
            backend=backend,
            scene=self.scene,
        )
        env = self.env
        if (llc.obs_dim, llc.action_dim, llc.frame_dim) != (env.num_obs, env.num_actions, env.num_amp_obs_per_step):
            raise ValueError(
                f"LLC expects obs {llc.obs_dim}, actions {llc.action_dim}, AMP frames {llc.frame_dim}, but the "
                f"humanoid env has {env.num_obs}, {env.num_actions}, {env.num_amp_obs_per_step}; load an LLC trained "
                "on this humanoid"
            )
        self.num_envs = cfg.num_envs
        self.latent_dim = llc.latent_dim
        self.dt = env.dt * cfg.llc_steps  # s per HLC step
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (env.num_obs,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.latent_dim,), np.float32)
        self.head_id = env.model.body_index("head")

        self._gen = torch.Generator().manual_seed(cfg.seed)
        self.reference_latents = self._encode_reference_latents(motion_lib)
        self.early_termination = EarlyTermination(
            cfg.num_envs, cfg.early_termination, device=self.device,
            generator=torch.Generator(self.device).manual_seed(cfg.seed + 1))
        self.progress = torch.zeros(cfg.num_envs, dtype=torch.long, device=self.device)
        self._obs = torch.zeros(cfg.num_envs, env.num_obs, device=self.device)
        self.prior: LatentPrior | None = None
        if cfg.latent_action != "free":
            self.prior = (prior if prior is not None else latent_prior(self.llc, motion_lib)).to(self.device)
        self._z_prev = torch.zeros(cfg.num_envs, self.latent_dim, device=self.device)
        self._fresh = torch.ones(cfg.num_envs, dtype=torch.bool, device=self.device)

    # ------------------------------------------------------------------ API
    def reset(self) -> dict[str, Tensor]:
        """Reset every env (first episodes staggered, see ``HLCEnvConfig.stagger_episodes``, when there is a time
        limit); returns ``{"obs": (N, 223)}``."""
        self._obs = self.env.reset()["obs"]
        self.llc.reset_timing()
        self.progress.zero_()
        if self.cfg.stagger_episodes and self.cfg.episode_length is not None:
            start = torch.randint(0, self.cfg.episode_length, (self.num_envs,), generator=self._gen)
            self.progress.copy_(start.to(self.device))
        all_ids = torch.arange(self.num_envs, device=self.device)
        self._fresh.fill_(True)
        self.early_termination.reset(all_ids)
        self._reset_goal(all_ids)
        return {"obs": self._obs}

    def step(self, actions: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, dict]:
        """One HLC step for actions (N, 64) in [-1, 1]; returns obs dict, reward (N,), dones (N,), infos.

        infos: ``time_outs``/``terminate`` (N,) bool (``time_outs`` also holds the similarity resets when they are
        truncated, ``EarlyTerminationConfig.similarity_end``); ``similarity`` (N,) mean scored similarity;
        ``similarities`` (N, T) per LLC step and ``scored`` (N, T) bool (steps inside the episode); ``reward`` (N,) and
        its Eq. 3 terms ``reward_clip``/``reward_latent``/``reward_velocity`` (N,) and ``root_velocity`` (N, 3) m/s, the
        root's mean velocity over the scored LLC steps; ``head_height`` (N,) m after the last LLC step; counts (int) of
        this step's ``et_similarity_resets``, ``et_fall_resets``, ``time_out_resets`` (time limits and blow-ups only: an
        episode counts once, a similarity reset that coincides with its time limit as a similarity reset),
        ``sim_blowups``; ``z`` (N, 64); with ``record_states``: ``llc_qpos`` (N, T, 35 + K), ``llc_body_pos`` (N, T, 15,
        3) and ``llc_body_rot`` (N, T, 15, 4), in a scene also ``llc_object_qvel`` (N, T, Kv) and
        ``llc_object_contacts`` (N, T, 15) bool (:meth:`~anyskill.sim.backend.Backend.object_contacts`), before the
        resets.
        """
        n, t_max = self.num_envs, self.cfg.llc_steps
        actions = torch.as_tensor(actions, dtype=torch.float32, device=self.device)
        if actions.shape != (n, self.latent_dim):
            raise ValueError(f"actions must have shape ({n}, {self.latent_dim}), got {tuple(actions.shape)}")
        z = self.latents(actions)

        sims = torch.zeros(n, t_max, device=self.device)
        scored = torch.zeros(n, t_max, dtype=torch.bool, device=self.device)
        ended = torch.zeros(n, dtype=torch.bool, device=self.device)
        terminate, time_out, limit, fired, fell = (torch.zeros_like(ended) for _ in range(5))
        blowups = 0
        record: dict[str, list[Tensor]] = {"llc_qpos": [], "llc_body_pos": [], "llc_body_rot": []}
        if self.scene is not None:
            record.update(llc_object_qvel=[], llc_object_contacts=[])
        obs = self._obs
        truncate_similarity = self.cfg.early_termination.similarity_end == "truncate"
        root_start = self.env.backend.body_pos()[:, 0].to(self.device)
        root_last = root_start.clone()  # the root at each env's last scored LLC step
        for t in range(t_max):
            obs_dict, _, inner_done, extras = self.env.step(self.llc.act(obs, z))
            obs = obs_dict["obs"]
            blowup = inner_done  # the inner env has no time limit and no fall rule: only blow-ups end its episodes
            blowups += int(extras["sim_blowups"])
            self.progress += 1
            states = HumanoidStates.from_backend(self.env.backend)
            if self.cfg.record_states:
                record["llc_qpos"].append(states.qpos.clone())
                record["llc_body_pos"].append(states.body_pos.clone())
                record["llc_body_rot"].append(states.body_rot.clone())
                if self.scene is not None:
                    record["llc_object_qvel"].append(self.env.backend.object_qvel().clone())
                    record["llc_object_contacts"].append(self.env.backend.object_contacts().clone())
            sim = self.goal.similarity(states).to(self.device)
            head_height = states.body_pos[:, self.head_id, 2]
            et = self.early_termination.step(sim, head_height)
            live = ~ended
            sims[:, t] = sim
            scored[:, t] = live & ~blowup
            root_last = torch.where(scored[:, t, None], states.body_pos[:, 0].to(self.device), root_last)
            term_now = live & (et["fallen"] if truncate_similarity else et["reset"]) & ~blowup
            limit_now = live & ~term_now & (blowup | self._timed_out())
            out_now = limit_now | (live & ~term_now & et["similarity"])
            fired |= live & et["similarity"] & ~blowup
            fell |= live & et["fallen"] & ~blowup
            terminate |= term_now
            time_out |= out_now
            limit |= limit_now & ~(et["similarity"] & ~blowup)  # counted once: as a similarity reset
            ended |= term_now | out_now

        sim_mean = (sims * scored).sum(1) / scored.sum(1).clamp_min(1)
        root_velocity = (root_last - root_start) / (scored.sum(1, keepdim=True).clamp_min(1) * self.env.dt)
        terms = hlc_reward(sim_mean[:, None], z, self.reference_latents, self.cfg.reward, root_velocity)
        done_ids = ended.nonzero().flatten()
        if done_ids.numel():
            self.env.reset_envs(done_ids, torch.zeros_like(done_ids, dtype=torch.bool))
            self.progress[done_ids] = 0
            self._fresh[done_ids] = True
            self.early_termination.reset(done_ids)
            self._reset_goal(done_ids)
            obs = self.env.policy_observation()
        self._obs = obs
        infos = {
            "time_outs": time_out,
            "terminate": terminate,
            "similarity": sim_mean,
            "similarities": sims,
            "scored": scored,
            "reward": terms["reward"],
            "reward_clip": terms["clip"],
            "reward_latent": terms["latent"],
            "reward_velocity": terms["velocity"],
            "root_velocity": root_velocity,
            "head_height": head_height,
            "et_similarity_resets": int(fired.sum()),
            "et_fall_resets": int(fell.sum()),
            "time_out_resets": int(limit.sum()),
            "sim_blowups": blowups,
            "z": z,
        }
        if self.cfg.record_states:
            infos.update({k: torch.stack(v, dim=1) for k, v in record.items()})
        return {"obs": obs}, terms["reward"], ended, infos

    def latents(self, actions: Tensor) -> Tensor:
        """Unit latents (N, 64) for this step's actions (N, 64), by ``cfg.latent_action`` at the current state (the
        module docstring); remembers them as the envs' previous latents."""
        mode, anchor = self.cfg.latent_action, None
        if self.prior is not None:
            if mode == "anchored":
                anchor = self.prior(self._obs)
            else:  # anchored_previous: the prior's latent where an episode starts
                anchor = torch.where(self._fresh[:, None], self.prior(self._obs), self._z_prev)
        z = latent_from_action(actions, mode, self.cfg.anchor_scale, anchor)
        self._z_prev = z
        self._fresh.fill_(False)
        return z

    # ------------------------------------------------------------------ helpers
    def _reset_goal(self, env_ids: Tensor) -> None:
        """Tell a goal with per-env memory (``reset_envs``, e.g. a temporal window of frames) which envs restarted."""
        reset_envs = getattr(self.goal, "reset_envs", None)
        if reset_envs is not None:
            reset_envs(env_ids)

    def _timed_out(self) -> Tensor:
        """(N,) bool: the episode reached ``episode_length`` LLC steps (never without a time limit)."""
        if self.cfg.episode_length is None:
            return torch.zeros_like(self.progress, dtype=torch.bool)
        return self.progress >= self.cfg.episode_length

    def _encode_reference_latents(self, motion_lib: MotionLibrary) -> Tensor:
        """(K, 64) unit latents: the frozen encoder on K random ``enc_steps``-frame library windows (fixed)."""
        gen = self._gen if motion_lib.device == torch.device("cpu") else None
        _, _, windows = motion_lib.sample_amp_windows(
            self.cfg.num_reference_latents, self.llc.enc_steps, self.env.dt, generator=gen)
        return self.llc.encode(windows.to(self.device))

