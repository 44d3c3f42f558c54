"""CALM training agent: rl-games' continuous PPO agent extended with latents, a conditional discriminator reward and
the motion-encoder losses (paper §3.1, reference facts §2.2-2.4).

One epoch (:meth:`CALMAgent.train_epoch`):

1. **Rollout** of ``horizon_length`` control steps in N envs. Each env follows a latent z = E(window), the encoding
   of a 60-frame AMP window of a weighted-random clip; z is resampled at every episode start and after
   U{latent_steps_min .. latent_steps_max - 1} steps. A window is named by one integer, the grid index of its
   newest frame (:class:`~anyskill.motion.frame_grid.AmpFrameGrid`), so experience stores window ids, not frames.
   With ``latent_from_reset_prob`` > 0, an episode that starts from a clip's reference state gets (with that
   probability) the latent of a window of the same clip around its start time: the policy then sees each skill's
   own states under its latent, and learns from them to perform it (an option of ours; CALM samples latents
   independently of the start state).
2. **Rewards and values for the whole batch at once**: the style reward r = -log(1 - D(s, s' | z)) (Eq. 2) of each
   step's 10-frame AMP history, V(s_t, z_t), and the bootstrap value V(s_{t+1}, z_t) from the env's
   ``terminal_obs`` (the state the step reached, also for time-outs, before the auto-reset), zero on termination.
3. **Update**: ``mini_epochs`` passes over shuffled minibatches. Each minibatch re-encodes the windows its samples
   followed *with* gradient — every distinct window once (there are a few per env and epoch, not one per sample) —
   so E learns through the actor and critic; and takes one step of the discriminator (agent ∪ replay windows vs
   demo windows drawn afresh from the grid, gradient penalty, optional negatives) and of the encoder regulariser
   (alignment of nearby windows + uniformity). All networks are one Adam optimiser with a parameter group each
   (actor, critic, encoder, discriminator), so each has its own learning rate (``lr_*``; default: the config's
   ``learning_rate`` for all, as the reference's single optimiser).

Differences from rl-games' stock PPO loss, following the reference: critic loss is ``critic_coef * MSE``, the bound
loss uses a soft bound of 1.0, and with epsilon-greedy rollouts the actor/bound terms are averaged over the
stochastic samples only. GAE cuts the recursion at every episode end; the bootstrap is zero on termination.

Exact resume: :meth:`save` also writes ``<checkpoint>.resume.pt`` (replay buffer, every random generator, the env's
physics snapshot and the rollout state) next to the newest checkpoint; :meth:`restore` picks it up, and training
then continues as if it had not stopped (tested bit for bit on the CPU backend).

Why this module is longer than 500 lines: :class:`CALMAgent` extends rl-games' A2CAgent by overriding its rollout,
update, logging and checkpoint methods, which all share the agent's state, so they stay one class; everything that
does not need that state lives elsewhere (settings: :mod:`anyskill.config.llc`,
networks: :mod:`anyskill.llc.calm.networks`, losses: :mod:`anyskill.llc.calm.losses`, motion windows:
:mod:`anyskill.motion.frame_grid`).
"""

from __future__ import annotations

import random
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rl_games.algos_torch import torch_ext
from rl_games.algos_torch.a2c_continuous import A2CAgent
from torch import Tensor

from anyskill.config.llc import CALMNetworkConfig, CALMSettings
from anyskill.humanoid.obs import policy_obs
from anyskill.llc.calm import losses

RESUME_SUFFIX = ".resume.pt"


def update_dtype(precision: str, device: torch.device | str) -> torch.dtype:
    """The autocast dtype of the update for a ``precision`` setting on ``device`` (see :class:`CALMSettings`)."""
    if precision == "auto":
        fast_bf16 = torch.device(device).type == "cuda" or torch.cpu._is_amx_tile_supported()
        return torch.bfloat16 if fast_bf16 else torch.float32
    return getattr(torch, precision)


class SampleBuffer:
    """Fixed-capacity ring buffer of named row tensors on one device (the replay buffer)."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[int, ...]], device: str | torch.device,
                 dtypes: dict[str, torch.dtype] | None = None):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        dtypes = dtypes or {}
        self.data = {k: torch.zeros((capacity, *s), dtype=dtypes.get(k, torch.float32), device=device)
                     for k, s in shapes.items()}
        self._head = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def store(self, **rows: Tensor) -> None:
        """Append rows (n, ...) for every field (same n); the oldest rows are overwritten when full."""
        if set(rows) != set(self.data):
            raise KeyError(f"store() needs exactly the fields {sorted(self.data)}, got {sorted(rows)}")
        n = next(iter(rows.values())).shape[0]
        if n == 0:
            return
        if n > self.capacity:
            rows = {k: v[-self.capacity:] for k, v in rows.items()}
            n = self.capacity
        idx = (self._head + torch.arange(n)) % self.capacity
        for k, v in rows.items():
            self.data[k][idx.to(self.data[k].device)] = v.reshape(n, *self.data[k].shape[1:]).to(self.data[k])
        self._head = (self._head + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(self, n: int) -> dict[str, Tensor]:
        """n rows drawn uniformly with replacement."""
        if self._size == 0:
            raise RuntimeError("cannot sample from an empty buffer; store() rows first")
        idx = torch.randint(0, self._size, (n,), device=next(iter(self.data.values())).device)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"data": {k: v[: self._size].clone() for k, v in self.data.items()}, "head": self._head,
                "size": self._size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        size = int(state["size"])
        if size > self.capacity:
            raise ValueError(f"saved buffer holds {size} rows, more than this buffer's capacity {self.capacity}")
        for k, v in self.data.items():
            v[:size] = state["data"][k].to(v)
        self._head, self._size = int(state["head"]), size


def find_motion_lib(vec_env: Any) -> Any:
    """The motion library of the training env: ``vec_env.motion_lib`` or ``vec_env.env.motion_lib``."""
    for candidate in (vec_env, getattr(vec_env, "env", None)):
        lib = getattr(candidate, "motion_lib", None)
        if lib is not None:
            return lib
    raise AttributeError(
        f"CALM needs the env's motion library (attribute 'motion_lib') to sample latents and demo windows; "
        f"{type(vec_env).__name__} has none. Build the env with a MotionLibrary."
    )


def exploration_probabilities(num_envs: int) -> Tensor:
    """(N,) probability that env i samples a stochastic action: 1 - exp(10 (i / (N - 1) - 1))."""
    if num_envs == 1:
        return torch.ones(1)
    frac = torch.arange(num_envs, dtype=torch.float32) / (num_envs - 1)
    return 1.0 - torch.exp(10.0 * (frac - 1.0))


def gae_advantages(rewards: Tensor, values: Tensor, next_values: Tensor, step_dones: Tensor, gamma: float,
                   tau: float) -> Tensor:
    """Generalised advantage estimates (H, N, 1) over a rollout of H steps.

    rewards, values (H, N, 1); next_values (H, N, 1) the bootstrap value after step t, already zero where
    step t terminated; step_dones (H, N) 1 where the episode ended at step t (termination or time-out),
    which cuts the recursion: A_t = δ_t + γ τ (1 - done_t) A_{t+1}, δ_t = r_t + γ V'_t - V_t.
    """
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        not_done = (1.0 - step_dones[t]).unsqueeze(1)
        delta = rewards[t] + gamma * next_values[t] - values[t]
        running = delta + gamma * tau * not_done * running
        advantages[t] = running
    return advantages


def encode_unique(encode: Callable[[Tensor], Tensor], window_ids: Tensor,
                  windows: Callable[[Tensor], Tensor]) -> Tensor:
    """Latents (n, d) of windows named by ``window_ids`` (n,), encoding each distinct window once:
    ``encode(windows(unique_ids))`` then gathered back."""
    unique, inverse = torch.unique(window_ids, return_inverse=True)
    return encode(windows(unique))[inverse]


class CALMAgent(A2CAgent):
    """rl-games agent registered as ``calm`` (see :func:`anyskill.llc.calm.registry.register_calm`)."""

    last_lr: float
    obs: dict[str, Tensor]
    dones: Tensor

    def __init__(self, base_name: str, params: dict[str, Any]):
        self.calm = CALMSettings.from_config(params["config"].get("calm"))
        super().__init__(base_name, params)
        self.net_cfg: CALMNetworkConfig = self.model.calm.cfg
        self.motion_lib = find_motion_lib(self.vec_env)
        self.env: Any = getattr(self.vec_env, "env", self.vec_env)
        env_dt = getattr(self.env, "dt", None)
        if env_dt is not None and abs(float(env_dt) - self.calm.motion_dt) > 1e-6:
            raise ValueError(
                f"config calm.motion_dt = {self.calm.motion_dt} s but the env's control step is {env_dt} s; AMP "
                "frames of demos and agent must be spaced alike, so set calm.motion_dt to the env's dt"
            )
        if self.num_agents != 1:
            raise ValueError(f"CALM supports one agent per env, the env reports {self.num_agents}")
        self.grid = self.motion_lib.frame_grid(self.calm.motion_dt)
        self.amp_dim = self.net_cfg.amp_frame_dim * self.net_cfg.disc_steps
        if self.grid.frame_dim != self.net_cfg.amp_frame_dim:
            raise ValueError(f"the motion library's AMP frames have {self.grid.frame_dim} values, the network expects "
                             f"amp_frame_dim = {self.net_cfg.amp_frame_dim}")
        self.replay_buffer = SampleBuffer(self.calm.replay_buffer_size, {"amp_obs": (self.amp_dim,), "window": ()},
                                          self.ppo_device, {"window": torch.long})
        self.update_dtype = update_dtype(self.calm.precision, self.ppo_device)
        self._build_optimizer()
        self.checkpoint_config = {
            "network": self.net_cfg.to_params(),
            "obs_dim": self.model.calm.obs_dim,
            "actions_num": self.actions_num,
            "normalize_input": self.normalize_input,
            "normalize_value": self.normalize_value,
            "calm": asdict(self.calm),
        }
        self.epoch_stats: list[dict[str, float]] = []
        self.epoch_callbacks: list[Callable[[CALMAgent, dict[str, float]], None]] = []
        """called as ``callback(agent, stats)`` at the end of every epoch, after logging (progress, monitors)."""
        self._log: dict[str, list[float]] = defaultdict(list)
        self._pending_resume: dict[str, Any] | None = None

    # ------------------------------------------------------------------ setup
    def _build_optimizer(self) -> None:
        """One Adam, a parameter group (own learning rate) per network; replaces rl-games' single-group Adam."""
        net = self.model.calm
        base = float(self.last_lr)
        groups: list[dict[str, Any]] = []
        for name, module in (("actor", net.actor), ("critic", net.critic), ("encoder", net.encoder),
                             ("disc", net.discriminator)):
            lr = getattr(self.calm, f"lr_{name}")
            groups.append({"params": list(module.parameters()), "lr": base if lr is None else float(lr), "name": name})
        grouped = sum(len(g["params"]) for g in groups)
        if grouped != len(list(self.model.parameters())):
            raise RuntimeError("CALM model has parameters outside actor, critic, encoder and discriminator")
        self.optimizer = torch.optim.Adam(groups, eps=1e-8, weight_decay=self.weight_decay)
        self._base_lrs = [g["lr"] for g in groups]

    def _adapt_learning_rates(self, kl: float) -> None:
        """KL-adaptive learning rates (``kl_target``, see :class:`CALMSettings`); the rates live in the optimiser's
        state, so checkpoints carry them."""
        target = self.calm.kl_target
        assert target is not None  # called only with a target
        factor = 1 / 1.5 if kl > 2 * target else 1.5 if kl < 0.5 * target else 1.0
        for group, base in zip(self.optimizer.param_groups, self._base_lrs, strict=True):
            group["lr"] = min(max(group["lr"] * factor, 0.1 * base), 3.0 * base)
        self.last_lr = self.optimizer.param_groups[0]["lr"]

    def init_tensors(self) -> None:
        super().init_tensors()
        n, dev = self.num_actors, self.ppo_device
        self._latents = torch.zeros((n, self.net_cfg.latent_dim), device=dev)
        self._latent_ids = torch.zeros(n, dtype=torch.long, device=dev)
        self._latent_steps_left = torch.zeros(n, dtype=torch.long, device=dev)
        self._reset_clip = torch.full((n,), -1, dtype=torch.long, device=dev)
        self._reset_time = torch.zeros(n, device=dev)
        self._reset_default = torch.zeros(n, dtype=torch.bool, device=dev)
        self._track_clip = torch.full((n,), -1, dtype=torch.long, device=dev)
        self._track_time = torch.zeros(n, device=dev)
        self._slide_countdown = torch.zeros(n, dtype=torch.long, device=dev)
        self._key_pose_on = torch.zeros(n, dtype=torch.bool, device=dev)
        self._key_pose = torch.zeros(n, 43, device=dev)
        if self.calm.key_pose_reward_weight > 0:
            lib = self.motion_lib
            s = lib.state_at(self.grid.clip_of.to(lib.device), self.grid.time_of.to(lib.device))
            self._grid_poses = policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel)[:, :43].to(dev)
        self._explore_prob = exploration_probabilities(n).to(dev)
        if self.epoch_num == 0:  # fresh run: seed the AMP normaliser with demonstration statistics
            seed_frames = max(self.calm.amp_batch_size * self.net_cfg.disc_steps, 20000)
            self.model.amp_norm.update(self._demo_frames(seed_frames))

    def env_reset(self):
        obs = super().env_reset()
        self._reset_clip = torch.as_tensor(getattr(self.env, "reset_clip", self._reset_clip), device=self.ppo_device)
        self._reset_time = torch.as_tensor(getattr(self.env, "reset_time", self._reset_time), device=self.ppo_device)
        self._reset_default = torch.as_tensor(getattr(self.env, "reset_default", self._reset_default),
                                              device=self.ppo_device)
        if self._pending_resume is not None:
            obs = self._apply_resume_state(self._pending_resume)
            self._pending_resume = None
        return obs

    # ------------------------------------------------------------------ motion windows
    def _enc_frames(self, ids: Tensor) -> Tensor:
        """(n, encoder.num_frames, F) raw frames the encoder reads from the windows ending at grid indices ``ids``."""
        enc = self.model.calm.encoder
        return self.grid.windows(ids, enc.num_frames, enc.stride)

    def _encode_ids(self, ids: Tensor) -> Tensor:
        """Unit latents (n, d) of the windows ``ids`` (n,), each distinct window encoded once."""
        return encode_unique(self.model.encode_frames, ids, self._enc_frames)

    def _demo_frames(self, n: int) -> Tensor:
        """(n, F) random demonstration frames, clips by weight (for the AMP normaliser's statistics)."""
        return self.grid.frames[self.grid.sample_window_ends(n, 1)]

    @torch.no_grad()
    def _refresh_latents(self, env_mask: Tensor) -> None:
        """New latents for the envs in ``env_mask`` (N,) bool: random clip windows, or, for an episode that has just
        started, with probability ``latent_from_reset_prob`` (reference-state starts) / ``latent_from_default_prob``
        (default-pose starts) a window of the clip it starts from / of a random clip's beginning. A coupled latent
        is held (and the clip tracked) until the clip ends, and never ends before the clip's first full window."""
        ids = env_mask.nonzero(as_tuple=False).flatten()
        if ids.numel() == 0:
            return
        dev, steps, grid = self.ppo_device, self.net_cfg.enc_steps, self.grid
        ends = grid.sample_window_ends(ids.numel(), steps).to(dev)
        hold = torch.randint(self.calm.latent_steps_min, self.calm.latent_steps_max, (ids.numel(),), device=dev)
        self._track_clip[ids] = -1
        clip = torch.full((ids.numel(),), -1, dtype=torch.long, device=dev)
        start_time = torch.zeros(ids.numel(), device=dev)
        if self.calm.latent_from_reset_prob > 0:
            draw = torch.rand(ids.numel(), device=dev)
            couple = (self._reset_clip[ids] >= 0) & (draw < self.calm.latent_from_reset_prob)
            clip[couple] = self._reset_clip[ids][couple]
            start_time[couple] = self._reset_time[ids][couple]
        from_default = torch.zeros(ids.numel(), dtype=torch.bool, device=dev)
        if self.calm.latent_from_default_prob > 0:
            draw = torch.rand(ids.numel(), device=dev)
            from_default = self._reset_default[ids] & (draw < self.calm.latent_from_default_prob)
            if from_default.any():
                clip[from_default] = grid.sample_clips(int(from_default.sum())).to(dev)
        coupled = clip >= 0
        if coupled.any():
            c = clip[coupled]
            first_full = grid.clip_start[c] + (grid.clip_len[c] - 1).clamp_max(steps - 1)
            start = grid.index_at(c, start_time[coupled])
            ahead = torch.randint(0, steps, (len(c),), device=dev)  # the window reaches up to 2 s past the start
            ends[coupled] = torch.maximum(grid.shift(start, ahead), first_full)
            remaining = ((self.motion_lib.durations.to(dev)[c] - start_time[coupled]) / self.calm.motion_dt).long()
            hold[coupled] = remaining.clamp_min(self.calm.latent_steps_min)
            self._track_clip[ids[coupled]] = c
            self._track_time[ids[coupled]] = start_time[coupled]
        self._key_pose_on[ids] = False
        if self.calm.key_pose_reward_weight > 0 and from_default.any():
            # a standing start holds its clip's key pose as a time-free target instead of tracking the clip in time
            key = from_default & coupled
            self._track_clip[ids[key]] = -1
            self._key_pose_on[ids[key]] = True
            self._key_pose[ids[key]] = self._window_key_pose(ends[key])
        self.model.eval()
        self._latent_ids[ids] = ends
        self._latents[ids] = self._encode_ids(ends)
        self._latent_steps_left[ids] = hold
        self._slide_countdown[ids] = self.calm.track_latent_every

    @torch.no_grad()
    def _slide_tracked_latents(self) -> None:
        """``track_latent_every``: tracked envs whose countdown ran out get the latent of the window ending
        ``track_latent_lookahead`` s after their tracked clip time."""
        self._slide_countdown.sub_(1)
        slide = (self._track_clip >= 0) & (self._slide_countdown <= 0)
        ids = slide.nonzero().flatten()
        if ids.numel() == 0:
            return
        ends = self.grid.index_at(self._track_clip[ids], self._track_time[ids] + self.calm.track_latent_lookahead)
        self._latent_ids[ids] = ends
        self._latents[ids] = self._encode_ids(ends)
        self._slide_countdown[ids] = self.calm.track_latent_every

    # ------------------------------------------------------------------ rollout
    def _env_tensor(self, infos: dict[str, Any], key: str) -> Tensor:
        if key not in infos:
            raise KeyError(f"CALM needs extras[{key!r}] from the env step; got extras keys {sorted(infos)}")
        return torch.as_tensor(infos[key], device=self.ppo_device)

    def play_steps(self) -> dict[str, Any]:
        """Roll out ``horizon_length`` steps; returns the flattened batch (env-major) with returns and advantages."""
        h, n, dev = self.horizon_length, self.num_actors, self.ppo_device
        model = self.model
        model.eval()
        buf: dict[str, list[Tensor]] = defaultdict(list)
        step_time = 0.0
        sigma = torch.exp(model.calm.log_std)
        for _ in range(h):
            self._refresh_latents(self.dones.bool() | (self._latent_steps_left <= 0))
            if self.calm.track_latent_every > 0:
                self._slide_tracked_latents()
            obs = self.obs["obs"]
            mu = model.calm.actor(model.norm_obs(obs), self._latents)
            actions = mu + sigma * torch.randn_like(mu)
            explore = torch.ones(n, dtype=torch.bool, device=dev)
            if self.calm.eps_greedy:
                explore = torch.rand(n, device=dev) < self._explore_prob
                actions = torch.where(explore[:, None], actions, mu)
            buf["obs"].append(obs)
            buf["actions"].append(actions)
            buf["mus"].append(mu)
            buf["latents"].append(self._latents.clone())
            buf["windows"].append(self._latent_ids.clone())
            buf["explore"].append(explore.float())

            t0 = time.perf_counter()
            self.obs, _, self.dones, infos = self.env_step(actions)
            step_time += time.perf_counter() - t0

            amp_obs = self._env_tensor(infos, "amp_obs").float()
            frames = amp_obs.shape[1] // self.net_cfg.amp_frame_dim
            frame_dim, disc_steps = self.net_cfg.amp_frame_dim, self.net_cfg.disc_steps
            if amp_obs.shape[0] != n or amp_obs.shape[1] % frame_dim or frames < disc_steps:
                raise ValueError(
                    f"extras['amp_obs'] has shape {tuple(amp_obs.shape)}, CALM expects ({n}, k x "
                    f"{self.net_cfg.amp_frame_dim}) with k >= disc_steps = {self.net_cfg.disc_steps} frames, newest "
                    "first; check network.amp_frame_dim / disc_steps against the env"
                )
            buf["amp_obs"].append(amp_obs[:, : self.amp_dim])  # the newest disc_steps frames
            buf["terminal_obs"].append(self._env_tensor(infos, "terminal_obs").float())
            buf["terminate"].append(self._env_tensor(infos, "terminate").bool())
            buf["dones"].append(self.dones.float())
            if "reset_clip" in infos:
                self._reset_clip = self._env_tensor(infos, "reset_clip").long()
            if "reset_time" in infos:
                self._reset_time = self._env_tensor(infos, "reset_time").float()
            if "reset_default" in infos:
                self._reset_default = self._env_tensor(infos, "reset_default").bool()
            done = self.dones.bool()
            buf["track"].append(self._track_reward(buf["terminal_obs"][-1], done))
            buf["key_pose"].append(self._key_pose_reward(buf["terminal_obs"][-1], done))
            self._latent_steps_left.sub_(1)

        b = {k: torch.stack(v) for k, v in buf.items()}  # (H, N, ...)
        with torch.no_grad():
            latents = b["latents"].reshape(h * n, -1)
            values = self._values(b["obs"].reshape(h * n, -1), latents).reshape(h, n, 1)
            next_values = self._values(b["terminal_obs"].reshape(h * n, -1), latents).reshape(h, n, 1)
            next_values = next_values * (~b["terminate"]).float().unsqueeze(-1)
            logits = model.disc_logits(b["amp_obs"].reshape(h * n, -1), latents)
            style = losses.style_reward(logits, self.calm.disc_reward_scale).reshape(h, n, 1)
            rewards = (style + self.calm.track_reward_weight * b["track"].unsqueeze(-1)
                       + self.calm.key_pose_reward_weight * b["key_pose"].unsqueeze(-1))
            neglogp = model.neglogp(b["actions"], b["mus"], sigma, model.calm.log_std)
        self._update_episode_stats(rewards, b["dones"])
        advantages = gae_advantages(rewards, values, next_values, b["dones"], self.gamma, self.tau)

        def flat(x: Tensor) -> Tensor:  # (H, N, ...) -> (N * H, ...), env-major as rl-games
            return x.transpose(0, 1).reshape(h * n, *x.shape[2:])

        self._log["style_reward"].append(style.mean().item())
        if self.calm.track_reward_weight > 0:
            tracked = b["track"] > 0
            self._log["track_fraction"].append(tracked.float().mean().item())
            if tracked.any():
                self._log["track_reward"].append(b["track"][tracked].mean().item())
        if self.calm.key_pose_reward_weight > 0:
            posed = b["key_pose"] > 0
            self._log["key_pose_fraction"].append(posed.float().mean().item())
            if posed.any():
                self._log["key_pose_reward"].append(b["key_pose"][posed].mean().item())
        self._log["explore_fraction"].append(b["explore"].mean().item())
        return {
            "obses": flat(b["obs"]), "actions": flat(b["actions"]), "mus": flat(b["mus"]),
            "neglogpacs": flat(neglogp), "values": flat(values), "returns": flat(advantages + values),
            "latents": flat(b["latents"]), "windows": flat(b["windows"]), "amp_obs": flat(b["amp_obs"]),
            "explore": flat(b["explore"]), "played_frames": self.batch_size, "step_time": step_time,
        }

    def _track_reward(self, reached_obs: Tensor, done: Tensor) -> Tensor:
        """(N,) tracking reward of the states each env reached (``reached_obs`` (N, obs_dim)) against its reference
        clip one control step later; 0 where no clip is tracked. Advances the tracked clip time; tracking ends with
        the episode or the clip."""
        reward = torch.zeros(self.num_actors, device=self.ppo_device)
        if self.calm.track_reward_weight <= 0:
            return reward
        active = self._track_clip >= 0
        self._track_time[active] += self.calm.motion_dt
        lib = self.motion_lib
        active &= self._track_time <= lib.durations.to(self.ppo_device)[self._track_clip.clamp_min(0)]
        ids = active.nonzero().flatten()
        if ids.numel():
            s = lib.state_at(self._track_clip[ids].to(lib.device), self._track_time[ids].to(lib.device))
            ref = policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel).to(self.ppo_device)
            k = 1 + 3 * (s.body_pos.shape[1] - 1)  # obs: root height, then root-relative body positions (heading frame)
            sq = (reached_obs[ids, 1:k] - ref[:, 1:k]).pow(2).reshape(len(ids), -1, 3).sum(-1)  # (n, B - 1) m^2
            sq = torch.cat([sq, (reached_obs[ids, :1] - ref[:, :1]).pow(2)], dim=1)  # and the root height's
            total = sq.sum(-1)  # (n,) m^2
            reward[ids] = 0.5 * (torch.exp(-self.calm.track_reward_scale * total)
                                 + torch.exp(-self.calm.track_reward_scale_wide * total))
        self._track_clip[~active | done] = -1
        return reward

    def _window_key_pose(self, ends: Tensor) -> Tensor:
        """(n, 43) pose features (root height, root-relative body positions in the heading frame) of the most
        distinctive frame of each encoder window ending at grid rows ``ends`` (n,): the one farthest from the
        window's first frame (for a gesture: its peak, e.g. the arms at their highest)."""
        first = self.grid.clip_start[self.grid.clip_of[ends]]
        back = torch.arange(self.net_cfg.enc_steps, device=ends.device)
        idx = torch.maximum(ends[:, None] - back, first[:, None])  # (n, steps) grid rows, newest first
        poses = self._grid_poses[idx]  # (n, steps, 43)
        oldest = poses[:, -1:]
        far = (poses - oldest).pow(2).sum(-1).argmax(1)
        return poses[torch.arange(len(ends), device=ends.device), far]

    def _key_pose_reward(self, reached_obs: Tensor, done: Tensor) -> Tensor:
        """(N,) key-pose reward of the reached states for envs holding a key pose (0 elsewhere); ends with the
        episode or the latent."""
        reward = torch.zeros(self.num_actors, device=self.ppo_device)
        on = self._key_pose_on
        if bool(on.any()):
            sq = (reached_obs[on, :43] - self._key_pose[on]).pow(2)
            total = sq[:, 1:].reshape(int(on.sum()), -1, 3).sum(-1).sum(-1) + sq[:, 0]
            reward[on] = 0.5 * (torch.exp(-self.calm.track_reward_scale * total)
                                + torch.exp(-self.calm.track_reward_scale_wide * total))
        self._key_pose_on &= ~done
        return reward

    def _values(self, obs: Tensor, z: Tensor) -> Tensor:
        """Unnormalised V(s, z) (n, 1) for raw obs (n, obs_dim)."""
        return self.model.denorm_value(self.model.calm.critic(self.model.norm_obs(obs), z))

    def _update_episode_stats(self, rewards: Tensor, dones: Tensor) -> None:
        for t in range(rewards.shape[0]):
            self.current_rewards.add_(rewards[t])
            self.current_shaped_rewards.add_(rewards[t])
            self.current_lengths.add_(1)
            done_ids = dones[t].nonzero(as_tuple=False)  # (k, 1), the indexing rl-games' meters expect
            self.game_rewards.update(self.current_rewards[done_ids])
            self.game_shaped_rewards.update(self.current_shaped_rewards[done_ids])
            self.game_lengths.update(self.current_lengths[done_ids])
            not_done = 1.0 - dones[t]
            self.current_rewards.mul_(not_done.unsqueeze(1))
            self.current_shaped_rewards.mul_(not_done.unsqueeze(1))
            self.current_lengths.mul_(not_done)

    # ------------------------------------------------------------------ update
    def train_epoch(self):
        self.vec_env.set_train_info(self.frame, self)
        t_play = time.perf_counter()
        with torch.no_grad():
            batch = self.play_steps()
        t_update = time.perf_counter()
        self.curr_frames = batch.pop("played_frames")
        self.model.train()
        data = self._prepare(batch)
        a_losses, c_losses, b_losses, entropies, kls = [], [], [], [], []
        size = data["obs"].shape[0]
        mb = self.minibatch_size
        step = 0
        for _ in range(self.mini_epochs_num):
            perm = torch.randperm(size, device=self.ppo_device)
            for start in range(0, size - mb + 1, mb):
                with_disc = step % self.calm.disc_update_every == 0
                a, c, b, e, kl = self._update_minibatch(data, perm[start:start + mb], with_disc)
                step += 1
                a_losses.append(a), c_losses.append(c), b_losses.append(b), entropies.append(e), kls.append(kl)
        if self.calm.kl_target is not None:
            self._adapt_learning_rates(float(torch.stack(kls).mean()))
        self._store_replay(batch)
        t_end = time.perf_counter()
        return (batch["step_time"], t_update - t_play, t_end - t_update, t_end - t_play, a_losses, c_losses, b_losses,
                entropies, kls, self.last_lr, 1.0)

    def _prepare(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Normalise obs (statistics updated once per epoch), values and returns (value normaliser updated), and
        advantages; add the AMP normaliser statistics of this epoch's agent and fresh demo frames."""
        model = self.model
        with torch.no_grad():
            if self.normalize_input:
                model.running_mean_std.train()
                model.running_mean_std(batch["obses"])
                model.running_mean_std.eval()
            values, returns = batch["values"], batch["returns"]
            advantages = (returns - values).squeeze(-1)
            if self.normalize_value:
                self.value_mean_std.train()
                values = self.value_mean_std(values)
                returns = self.value_mean_std(returns)
                self.value_mean_std.eval()
            if self.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            model.amp_norm.update(batch["amp_obs"][:, : self.net_cfg.amp_frame_dim])
            model.amp_norm.update(self._demo_frames(self.calm.amp_batch_size * self.net_cfg.disc_steps))
            norm_obs = model.norm_obs(batch["obses"])
        return {"obs": norm_obs, "actions": batch["actions"], "old_neglogp": batch["neglogpacs"],
                "old_mu": batch["mus"], "advantages": advantages, "returns": returns, "old_values": values,
                "windows": batch["windows"], "latents": batch["latents"], "amp_obs": batch["amp_obs"],
                "explore": batch["explore"]}

    def _autocast(self):
        if self.update_dtype == torch.float32:
            return nullcontext()
        return torch.autocast(torch.device(self.ppo_device).type, dtype=self.update_dtype)

    def _update_minibatch(self, data: dict[str, Tensor], idx: Tensor, with_disc: bool = True):
        """One optimiser step on PPO + disc_coef * discriminator + enc_coef * encoder-regulariser losses. The policy
        path (latents and actor) stays in float32: with σ = exp(-2.9) a bfloat16 mean would shift log-probabilities
        by ~0.4 over 28 actions and swamp the PPO ratio; critic, discriminator and regulariser use ``precision``."""
        model, net = self.model, self.model.calm
        sigma = torch.exp(net.log_std)
        mask = data["explore"][idx]
        obs = data["obs"][idx]
        z = self._encode_ids(data["windows"][idx]) if self.calm.encoder_through_policy else data["latents"][idx]
        mu = net.actor(obs, z)
        neglogp = model.neglogp(data["actions"][idx], mu, sigma, net.log_std)
        ratio = torch.exp(data["old_neglogp"][idx] - neglogp)
        adv = data["advantages"][idx]
        surrogate = torch.max(-adv * ratio, -adv * ratio.clamp(1.0 - self.e_clip, 1.0 + self.e_clip))
        count = mask.sum().clamp_min(1.0)
        a_loss = (surrogate * mask).sum() / count
        b_loss = (self.bound_loss(mu) * mask).sum() / count
        with self._autocast():
            values = net.critic(obs, z).float()
            c_loss = (values - data["returns"][idx]).pow(2).mean()
            loss = a_loss + self.critic_coef * c_loss + self.bounds_loss_coef * b_loss
            if with_disc:
                disc, enc_loss = self._discriminator_and_encoder_losses(data)
                loss = loss + self.calm.disc_coef * disc.total + self.calm.enc_coef * enc_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.truncate_grads:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_norm)
        self.optimizer.step()
        with torch.no_grad():  # KL(old || new) of Gaussians with the same fixed σ
            kl = ((mu.detach() - data["old_mu"][idx]).pow(2).sum(-1) / (2 * sigma.pow(2).mean())).mean()
        return a_loss.detach(), c_loss.detach(), b_loss.detach(), torch.zeros(()), kl

    def bound_loss(self, mu: Tensor) -> Tensor:
        return losses.action_bound_loss(mu, self.calm.bound_soft_limit)

    def _discriminator_and_encoder_losses(self, data: dict[str, Tensor]
                                          ) -> tuple[losses.DiscriminatorLossTerms, Tensor]:
        """One discriminator minibatch (agent windows of this epoch under their rollout latents ∪ replay windows vs
        fresh demo windows under their encodings) and the encoder regulariser; logs their terms."""
        model, net, cfg = self.model, self.model.calm, self.calm
        n = cfg.amp_minibatch_size
        steps, disc_steps = self.net_cfg.enc_steps, self.net_cfg.disc_steps
        pick = torch.randint(0, data["amp_obs"].shape[0], (n,), device=self.ppo_device)
        agent_amp, z_agent = data["amp_obs"][pick], data["latents"][pick]
        if len(self.replay_buffer) > 0:
            replay = self.replay_buffer.sample(n)
            with torch.no_grad():
                z_replay = self._encode_ids(replay["window"])
            agent_amp = torch.cat([agent_amp, replay["amp_obs"]])
            z_agent = torch.cat([z_agent, z_replay.to(z_agent.dtype)])

        m = cfg.enc_batch_size or n
        enc_ends = self.grid.sample_window_ends(max(n, m), steps)
        span = (self.grid.clip_len[self.grid.clip_of[enc_ends]].clamp_max(steps) - 1 - disc_steps).clamp_min(0)
        back = (torch.rand(len(enc_ends), device=self.ppo_device) * (span + 1).float()).long().minimum(span)
        demo_ends = self.grid.shift(enc_ends, -back)
        e0 = self._encode_ids(enc_ends[:m])  # with gradient: the uniformity and alignment terms shape E
        z_demo = e0[:n].detach()
        if n > m:
            with torch.no_grad():
                z_demo = torch.cat([z_demo, self._encode_ids(enc_ends[m:n])])
        demo_inputs = model.norm_amp(self.grid.windows(demo_ends[:n], disc_steps).reshape(n, -1))
        demo_inputs = demo_inputs.detach().requires_grad_(True)
        agent_logits = net.discriminator(model.norm_amp(agent_amp), z_agent)
        demo_logits = net.discriminator(demo_inputs, z_demo)
        negative_logits = None
        if cfg.negative_disc_samples:  # the paper's ternary term: demo windows under another sample's latent
            negative_logits = net.discriminator(demo_inputs.detach(), z_demo.roll(1, dims=0))
        disc = losses.conditional_discriminator_loss(
            agent_logits.float(), demo_logits.float(), demo_inputs, net.discriminator.logit_weight(),
            net.discriminator.weights(), None if negative_logits is None else negative_logits.float(),
            cfg.disc_logit_reg, cfg.disc_grad_penalty, cfg.disc_weight_decay,
        )
        shift = (torch.rand(m, device=self.ppo_device) * cfg.align_max_shift / cfg.motion_dt).round().long()
        e1 = self._encode_ids(self.grid.shift(enc_ends[:m], -shift))
        enc_loss, align, uniform = losses.encoder_regularization(
            e0.float(), e1.float(), e0.float(), cfg.enc_align_weight, cfg.enc_uniform_weight)
        for key, value in (("disc_loss", disc.total), ("disc_bce", disc.bce), ("disc_agent_bce", disc.agent_bce),
                           ("disc_demo_bce", disc.demo_bce), ("disc_grad_penalty", disc.grad_penalty),
                           ("disc_logit_reg", disc.logit_reg), ("disc_agent_accuracy", disc.agent_accuracy),
                           ("disc_demo_accuracy", disc.demo_accuracy), ("enc_align", align),
                           ("enc_uniform", uniform), ("enc_loss", enc_loss)):
            self._log[key].append(float(value.detach()))
        if disc.negative_bce is not None:
            self._log["disc_negative_bce"].append(float(disc.negative_bce.detach()))
        return disc, enc_loss

    def _store_replay(self, batch: dict[str, Tensor]) -> None:
        amp_obs, windows = batch["amp_obs"], batch["windows"]
        if len(self.replay_buffer) >= self.replay_buffer.capacity:
            keep = torch.rand(amp_obs.shape[0], device=amp_obs.device) < self.calm.replay_keep_prob
            amp_obs, windows = amp_obs[keep], windows[keep]
        self.replay_buffer.store(amp_obs=amp_obs, window=windows)

    # ------------------------------------------------------------------ logging
    def write_stats(self, total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses, entropies,
                    kls, last_lr, lr_mul, frame, scaled_time, scaled_play_time, curr_frames):
        super().write_stats(total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses, entropies,
                            kls, last_lr, lr_mul, frame, scaled_time, scaled_play_time, curr_frames)
        stats = {key: sum(v) / len(v) for key, v in self._log.items() if v}
        stats["disc_accuracy"] = 0.5 * (stats["disc_agent_accuracy"] + stats["disc_demo_accuracy"])
        if self.game_lengths.current_size > 0:
            stats["episode_length"] = float(self.game_lengths.get_mean())
        stats["actor_loss"] = float(torch_ext.mean_list(a_losses))
        stats["critic_loss"] = float(torch_ext.mean_list(c_losses))
        stats["kl"] = float(torch_ext.mean_list(kls))
        stats["lr_actor"] = float(self.optimizer.param_groups[0]["lr"])
        for key, value in stats.items():
            self.writer.add_scalar(f"calm/{key}", value, frame)
        stats.update(epoch=float(epoch_num), samples=float(frame), step_time_s=float(step_time),
                     play_time_s=float(play_time), update_time_s=float(update_time))
        self.epoch_stats.append(stats)
        self._log = defaultdict(list)
        for callback in self.epoch_callbacks:
            callback(self, stats)

    # ------------------------------------------------------------------ checkpoints and exact resume
    def get_full_state_weights(self) -> dict[str, Any]:
        state = super().get_full_state_weights()
        state["calm_config"] = self.checkpoint_config
        return state

    def save(self, fn: str) -> None:
        """The rl-games checkpoint ``fn.pth`` plus ``fn.pth.resume.pt`` with what exact resumption needs (only the
        newest checkpoint of the folder keeps its resume file)."""
        super().save(fn)
        path = Path(f"{fn}.pth")
        try:
            resume = self._resume_state()
        except NotImplementedError as e:  # a backend without snapshots: resume from weights only
            warnings.warn(f"no exact-resume state written: {e}", RuntimeWarning, stacklevel=2)
            return
        for old in path.parent.glob(f"*{RESUME_SUFFIX}"):
            old.unlink()
        torch_ext.safe_save(resume, str(path) + RESUME_SUFFIX)

    def restore(self, fn: str, set_epoch: bool = True) -> None:
        super().restore(fn, set_epoch)
        side = Path(str(fn) + RESUME_SUFFIX)
        if side.is_file():
            self._pending_resume = torch_ext.safe_load(str(side))
        else:
            warnings.warn(f"{fn}: no {side.name} next to it; resuming from weights, normalisers and optimiser with "
                          "fresh episodes and an empty replay buffer (not an exact continuation)", RuntimeWarning,
                          stacklevel=2)

    def _resume_state(self) -> dict[str, Any]:
        snapshot = getattr(self.env, "snapshot", None)
        if snapshot is None:
            raise NotImplementedError(f"{type(self.env).__name__} has no snapshot()")
        rollout = {k: getattr(self, k).clone() for k in _ROLLOUT_STATE}
        return {
            "env": snapshot(),
            "obs": self.obs["obs"].clone(),
            "dones": self.dones.clone(),
            "rollout": rollout,
            "replay": self.replay_buffer.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
        }

    def _apply_resume_state(self, state: dict[str, Any]) -> dict[str, Tensor]:
        self.env.restore(state["env"])
        for k in _ROLLOUT_STATE:
            setattr(self, k, state["rollout"][k].to(self.ppo_device))
        self.replay_buffer.load_state_dict(state["replay"])
        self.dones = state["dones"].to(self.ppo_device)
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        return {"obs": state["obs"].to(self.ppo_device)}


_ROLLOUT_STATE = ("_latents", "_latent_ids", "_latent_steps_left", "_reset_clip", "_reset_time", "_reset_default",
                  "_track_clip", "_track_time", "_slide_countdown", "_key_pose_on", "_key_pose")
