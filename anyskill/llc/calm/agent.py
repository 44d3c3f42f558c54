"""CALM training agent: rl-games' continuous PPO agent extended with latents, a conditional discriminator reward and
the motion-encoder losses (paper §3.1, reference facts §2.2-2.4).

One epoch (:meth:`CALMAgent.train_epoch`):

1. **Rollout** of ``horizon_length`` control steps in N envs. Each env follows a latent z = E(window), the encoding
   of a 60-frame AMP window of a weighted-random clip, resampled at every episode start and after a random number
   of steps, or coupled to the clip the episode started from (:mod:`anyskill.llc.calm.latents`). Windows are named
   by the grid row of their newest frame (:mod:`anyskill.llc.calm.windows`), so experience stores window ids.
2. **Rewards and values for the whole batch at once**: the style reward r = -log(1 - D(s, s' | z)) (Eq. 2) of each
   step's 10-frame AMP history, V(s_t, z_t), and the bootstrap value V(s_{t+1}, z_t) from the env's
   ``terminal_obs`` (the state the step reached, also for time-outs, before the auto-reset), zero on termination.
3. **Update**: ``mini_epochs`` passes over shuffled minibatches. Each minibatch re-encodes the windows its samples
   followed *with* gradient — every distinct window once (there are a few per env and epoch, not one per sample) —
   so E learns through the actor and critic; and takes one step of the discriminator and of the encoder
   regulariser (:mod:`anyskill.llc.calm.disc_step`). All networks are one Adam optimiser with a parameter group each
   (actor, critic, encoder, discriminator), so each has its own learning rate (``lr_*``; default: the config's
   ``learning_rate`` for all, as the reference's single optimiser).

Differences from rl-games' stock PPO loss, following the reference: critic loss is ``critic_coef * MSE``, the bound
loss uses a soft bound of 1.0, and with epsilon-greedy rollouts the actor/bound terms are averaged over the
stochastic samples only. GAE cuts the recursion at every episode end; the bootstrap is zero on termination.

Devices: everything the agent creates lives on rl-games' ``ppo_device``: the motion library and its frame grid
(moved there once at construction when the env's library is elsewhere), the latent schedule, the replay buffer and
the logged loss terms (read once per epoch). Exact resume: :mod:`anyskill.llc.calm.resume`. Pieces that need none
of the agent's state: :mod:`anyskill.llc.calm.ppo`, :mod:`anyskill.llc.calm.losses`.

Data-parallel under torchrun (:mod:`anyskill.llc.distributed`, issue 29): the agent joins the running process group
and sets rl-games' ``multi_gpu``, so rl-games' multi-GPU training loop runs it — rank 0's initial weights broadcast,
rank 0 alone logs, writes checkpoints and TensorBoard and decides when to stop, samples counted over the processes.
What CALM's own update adds: gradients averaged over the processes before every step, the KL of the adaptive
learning rates averaged, and the normalisers (policy obs, value, AMP frames) averaged after each epoch's update.
rl-games 1.6.5 would start its own NCCL group from the config's ``multi_gpu`` (CUDA only); the group is started
before instead (NCCL on GPUs, gloo on CPUs), which also runs CALM on several CPU processes.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from rl_games.algos_torch import torch_ext
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common import a2c_common
from torch import Tensor

from anyskill.config.llc import CALMNetworkConfig, CALMSettings
from anyskill.llc import distributed as ddp
from anyskill.llc.calm import losses
from anyskill.llc.calm.disc_step import discriminator_and_encoder_losses
from anyskill.llc.calm.latents import LatentSchedule
from anyskill.llc.calm.ppo import SampleBuffer, exploration_probabilities, gae_advantages, update_dtype
from anyskill.llc.calm.resume import apply_resume_state, read_resume_file, resume_state, write_resume_file
from anyskill.llc.calm.windows import MotionWindows, find_motion_lib

RESET_KEYS = ("reset_clip", "reset_time", "reset_default")
"""The env's records of where new episodes started (attributes after a reset, extras after a step)."""


class CALMAgent(A2CAgent):
    """rl-games agent registered as ``calm`` (see :func:`anyskill.llc.calm.registry.register_calm`)."""

    last_lr: float
    obs: dict[str, Tensor]
    dones: Tensor
    writer: Any

    def __init__(self, base_name: str, params: dict[str, Any]):
        self.calm = CALMSettings.from_config(params["config"].get("calm"))
        with _no_writer_off_rank_zero():
            super().__init__(base_name, params)
        self.net_cfg: CALMNetworkConfig = self.model.calm.cfg
        self.env: Any = getattr(self.vec_env, "env", self.vec_env)
        env_dt = getattr(self.env, "dt", None)
        if env_dt is not None and abs(float(env_dt) - self.calm.motion_dt) > 1e-6:
            raise ValueError(
                f"config calm.motion_dt = {self.calm.motion_dt} s but the env's control step is {env_dt} s; AMP "
                "frames of demos and agent must be spaced alike, so set calm.motion_dt to the env's dt"
            )
        if self.num_agents != 1:
            raise ValueError(f"CALM supports one agent per env, the env reports {self.num_agents}")
        self.windows = MotionWindows(find_motion_lib(self.vec_env), self.calm.motion_dt, self.ppo_device, self.model,
                                     key_poses=self.calm.key_pose_reward_weight > 0)
        self.motion_lib, self.grid = self.windows.lib, self.windows.grid
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
        self._log: dict[str, list[Any]] = defaultdict(list)
        """values logged during the epoch (floats, or tensors on the device read once at its end)."""
        self._pending_resume: dict[str, Any] | None = None
        if ddp.is_distributed():
            self._join_process_group()

    # ------------------------------------------------------------------ setup
    def _join_process_group(self) -> None:
        """Data-parallel (issue 29, module docstring): run in rl-games' multi-GPU training loop as this rank."""
        self.multi_gpu = True
        self.global_rank, self.world_size = ddp.rank(), ddp.world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.global_rank != 0:  # rank 0 alone prints and writes (no TensorBoard writer here: see __init__)
            self.print_stats = False

    def train(self):
        """rl-games' training loop; on several CPU processes (gloo) without its CUDA device selection."""
        if self.multi_gpu and torch.device(self.ppo_device).type != "cuda":
            with _no_cuda_device_selection():
                return super().train()
        return super().train()

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
        self.latent_schedule = LatentSchedule(self.num_actors, self.net_cfg.latent_dim, self.net_cfg.enc_steps,
                                              self.calm, self.windows)
        self._explore_prob = exploration_probabilities(self.num_actors, self.ppo_device)
        if self.epoch_num == 0:  # fresh run: seed the AMP normaliser with demonstration statistics
            seed_frames = max(self.calm.amp_batch_size * self.net_cfg.disc_steps, 20000)
            self.model.amp_norm.update(self.windows.demo_frames(seed_frames))

    def env_reset(self):
        obs = super().env_reset()
        self.latent_schedule.note_resets(*(getattr(self.env, k, None) for k in RESET_KEYS))
        if self._pending_resume is not None:
            obs, self.dones = apply_resume_state(self._pending_resume, self.env, self.latent_schedule,
                                                 self.replay_buffer, self.ppo_device)
            self._pending_resume = None
        return obs

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
            schedule = self.latent_schedule
            schedule.refresh(self.dones.bool() | (schedule.steps_left <= 0))
            if self.calm.track_latent_every > 0:
                schedule.slide()
            obs = self.obs["obs"]
            mu = model.calm.actor(model.norm_obs(obs), schedule.latents)
            actions = mu + sigma * torch.randn_like(mu)
            explore = torch.ones(n, dtype=torch.bool, device=dev)
            if self.calm.eps_greedy:
                explore = torch.rand(n, device=dev) < self._explore_prob
                actions = torch.where(explore[:, None], actions, mu)
            buf["obs"].append(obs)
            buf["actions"].append(actions)
            buf["mus"].append(mu)
            buf["latents"].append(schedule.latents.clone())
            buf["windows"].append(schedule.window_ids.clone())
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
            schedule.note_resets(*(infos.get(k) for k in RESET_KEYS))
            done = self.dones.bool()
            buf["track"].append(schedule.track_reward(buf["terminal_obs"][-1], done))
            buf["key_pose"].append(schedule.key_pose_reward(buf["terminal_obs"][-1], done))
            schedule.steps_left.sub_(1)

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
        if self.calm.kl_target is not None:  # data-parallel: the mean KL of every process
            self._adapt_learning_rates(float(ddp.all_reduce_mean(torch.stack(kls).mean())))
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
            model.amp_norm.update(self.windows.demo_frames(self.calm.amp_batch_size * self.net_cfg.disc_steps))
            if self.multi_gpu:
                self._average_normalisers()
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
        z = self.windows.encode(data["windows"][idx]) if self.calm.encoder_through_policy else data["latents"][idx]
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
                disc, enc_loss = discriminator_and_encoder_losses(model, self.windows, self.replay_buffer, data,
                                                                  self.calm, self.net_cfg, self._log)
                loss = loss + self.calm.disc_coef * disc.total + self.calm.enc_coef * enc_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.multi_gpu:
            ddp.sync_gradients(model)  # data-parallel: the mean gradient of every process's minibatch
        if self.truncate_grads:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.grad_norm)
        self.optimizer.step()
        with torch.no_grad():  # KL(old || new) of Gaussians with the same fixed σ
            kl = ((mu.detach() - data["old_mu"][idx]).pow(2).sum(-1) / (2 * sigma.pow(2).mean())).mean()
        return a_loss.detach(), c_loss.detach(), b_loss.detach(), torch.zeros((), device=self.ppo_device), kl

    def _average_normalisers(self) -> None:
        """Data-parallel: one set of normaliser statistics on every process, the mean of theirs after this epoch's
        updates (each process weighs equally; the counts, equal everywhere, stay)."""
        model = self.model
        stats = [(model.amp_norm, "mean", "var")]
        if self.normalize_input:
            stats.append((model.running_mean_std, "running_mean", "running_var"))
        if self.normalize_value:
            stats.append((self.value_mean_std, "running_mean", "running_var"))
        for module, mean, var in stats:
            ddp.average_running_stats(getattr(module, mean), getattr(module, var))
        model.amp_norm.load_state_dict(model.amp_norm.state_dict())  # drops its cached casts of the statistics

    def bound_loss(self, mu: Tensor) -> Tensor:
        return losses.action_bound_loss(mu, self.calm.bound_soft_limit)

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
        stats = {key: sum(float(x) for x in v) / len(v) for key, v in self._log.items() if v}
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
        try:
            state = resume_state(self.env, self.obs["obs"], self.dones, self.latent_schedule, self.replay_buffer)
        except NotImplementedError as e:  # a backend without snapshots: resume from weights only
            warnings.warn(f"no exact-resume state written: {e}", RuntimeWarning, stacklevel=2)
            return
        write_resume_file(Path(f"{fn}.pth"), state)

    def restore(self, fn: str, set_epoch: bool = True) -> None:
        super().restore(fn, set_epoch)
        # data-parallel: the exact-resume state (worlds, generators, replay) is one process's; the others start
        # their own worlds from the restored weights
        self._pending_resume = read_resume_file(fn) if ddp.is_main() else None


@contextmanager
def _no_writer_off_rank_zero() -> Iterator[None]:
    """rl-games opens a TensorBoard event file in its constructor on every process (it learns its rank later, from
    ``multi_gpu``); under torchrun the ranks above 0 open none. Two processes starting in the same second would
    otherwise share one file name (``events.out.tfevents.<second>.<host>``) and write over each other."""
    if not ddp.is_distributed() or ddp.rank() == 0:
        yield
        return
    make = a2c_common.SummaryWriter
    a2c_common.SummaryWriter = lambda *args, **kwargs: None
    try:
        yield
    finally:
        a2c_common.SummaryWriter = make


@contextmanager
def _no_cuda_device_selection() -> Iterator[None]:
    """rl-games' multi-GPU loop calls ``torch.cuda.set_device(local_rank)``; on CPU processes (gloo) that is a no-op."""
    select = torch.cuda.set_device
    torch.cuda.set_device = lambda device: None
    try:
        yield
    finally:
        torch.cuda.set_device = select
