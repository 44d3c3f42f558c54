"""CALM training agent: rl-games' continuous PPO agent extended with latents, a conditional
discriminator reward and the motion-encoder losses (paper §3.1, reference facts §2.2-2.4).

Per control step, each env follows a latent z = E(window) of a weighted-random clip at a random time,
resampled at reset and every U{latent_steps_min .. latent_steps_max - 1} steps; the reward is the
conditional-discriminator style reward of the env's 10-frame AMP history (``extras["amp_obs"]``) under z.
The 60-frame encoder windows that produced z are stored with the experience, so in the update the
latents are re-encoded *with* gradient and E learns through the actor and critic as well as through
its alignment/uniformity regulariser.

One Adam optimiser over all networks (actor, critic, encoder, discriminator); every minibatch takes
one step on  PPO loss + disc_coef * discriminator loss + enc_coef * encoder regulariser
(as the reference code does). Differences from rl-games' stock PPO loss, following the reference:
critic loss is ``critic_coef * MSE`` (rl-games uses 0.5 * critic_coef), the bound loss uses a soft
bound of 1.0 (rl-games 1.1), and with epsilon-greedy rollouts the actor/entropy/bound terms are
averaged over the stochastic samples only.

GAE keeps terminations and time-outs apart: the advantage recursion is cut at every episode end;
the bootstrap value is 0 on termination (``extras["terminate"]``), V(s_t, z) on a time-out
(``extras["time_outs"]``; the env auto-resets, so the obs it returns for a done env is the next
episode's first one and cannot be used), and V(s_{t+1}, z) otherwise.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import torch
from rl_games.algos_torch import torch_ext
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common import common_losses
from rl_games.common.a2c_common import swap_and_flatten01
from torch import Tensor

from anyskill.llc import losses
from anyskill.llc.networks import CALMNetworkConfig


@dataclass(frozen=True)
class CALMSettings:
    """The ``calm`` section of the rl-games ``config``; defaults are the reference values (facts §2.2-2.4).

    latent_steps_min/max: a latent is held for U{min .. max-1} control steps. amp_batch_size: new demo
    samples per epoch; amp_minibatch_size: agent/replay/demo samples per discriminator minibatch.
    replay_keep_prob: fraction of an epoch's agent samples kept once the replay buffer is full.
    negative_disc_samples: include the paper's ternary term (demo windows with mismatched latents);
    the reference code computes it but does not use it (set False for the code's behaviour).
    align_max_shift: end times of the two alignment windows differ by U(0, align_max_shift) s.
    eps_greedy: env i acts stochastically with probability 1 - exp(10 (i / (N - 1) - 1)), else takes
    the mean action. motion_dt: spacing of AMP frames, s (one control step).
    """

    latent_steps_min: int = 10
    latent_steps_max: int = 150
    amp_batch_size: int = 512
    amp_minibatch_size: int = 1024
    demo_buffer_size: int = 50000
    replay_buffer_size: int = 50000
    replay_keep_prob: float = 0.01
    disc_coef: float = 5.0
    disc_logit_reg: float = 0.01
    disc_grad_penalty: float = 5.0
    disc_weight_decay: float = 1e-4
    disc_reward_scale: float = 2.0
    negative_disc_samples: bool = True
    enc_coef: float = 0.1
    enc_align_weight: float = 1.0
    enc_uniform_weight: float = 0.5
    align_max_shift: float = 0.5
    eps_greedy: bool = True
    bound_soft_limit: float = 1.0
    motion_dt: float = 1.0 / 30.0

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> "CALMSettings":
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} in config['calm']; valid options are {sorted(known)}")
        settings = cls(**section)
        if not 1 <= settings.latent_steps_min < settings.latent_steps_max:
            raise ValueError(
                f"need 1 <= latent_steps_min < latent_steps_max, got {settings.latent_steps_min}, "
                f"{settings.latent_steps_max}"
            )
        if settings.amp_minibatch_size < 2 or settings.amp_batch_size < 1:
            raise ValueError(
                f"amp_minibatch_size must be >= 2 (uniformity loss) and amp_batch_size >= 1, got "
                f"{settings.amp_minibatch_size}, {settings.amp_batch_size}"
            )
        return settings


class SampleBuffer:
    """Fixed-capacity ring buffer of named row tensors on one device (demo and replay buffers)."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[int, ...]], device: str | torch.device):
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = {k: torch.zeros((capacity, *s), dtype=torch.float32, device=device) for k, s in shapes.items()}
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


class CALMAgent(A2CAgent):
    """rl-games agent registered as ``calm`` (see :func:`anyskill.llc.registry.register_calm`)."""

    def __init__(self, base_name: str, params: dict[str, Any]):
        self.calm = CALMSettings.from_config(params["config"].get("calm"))
        super().__init__(base_name, params)
        self.net_cfg: CALMNetworkConfig = self.model.calm.cfg
        self.motion_lib = find_motion_lib(self.vec_env)
        env_dt = getattr(getattr(self.vec_env, "env", self.vec_env), "dt", None)
        if env_dt is not None and abs(float(env_dt) - self.calm.motion_dt) > 1e-6:
            raise ValueError(
                f"config calm.motion_dt = {self.calm.motion_dt} s but the env's control step is {env_dt} s; AMP "
                "frames of demos and agent must be spaced alike, so set calm.motion_dt to the env's dt"
            )
        if self.num_agents != 1:
            raise ValueError(f"CALM supports one agent per env, the env reports {self.num_agents}")
        frame = self.net_cfg.amp_frame_dim
        self.amp_dim = frame * self.net_cfg.disc_steps
        self.enc_dim = frame * self.net_cfg.enc_steps
        shapes = {"amp_obs": (self.amp_dim,), "enc_windows": (self.enc_dim,)}
        self.demo_buffer = SampleBuffer(self.calm.demo_buffer_size, shapes, self.ppo_device)
        self.replay_buffer = SampleBuffer(self.calm.replay_buffer_size, shapes, self.ppo_device)
        self.checkpoint_config = {
            "network": self.net_cfg.to_params(),
            "obs_dim": self.model.calm.obs_dim,
            "actions_num": self.actions_num,
            "normalize_input": self.normalize_input,
            "normalize_value": self.normalize_value,
            "calm": asdict(self.calm),
        }
        self.epoch_stats: list[dict[str, float]] = []
        self.epoch_callbacks: list[Callable[["CALMAgent", dict[str, float]], None]] = []
        """called as ``callback(agent, stats)`` at the end of every epoch, after logging (progress, monitors)."""
        self._log: dict[str, list[float]] = defaultdict(list)

    # ------------------------------------------------------------------ setup
    def init_tensors(self) -> None:
        super().init_tensors()
        h, n, dev = self.horizon_length, self.num_actors, self.ppo_device
        extra = {
            "amp_obs": (self.amp_dim,), "enc_windows": (self.enc_dim,), "rand_action_mask": (),
            "next_values": (1,), "step_dones": (),
        }
        for key, shape in extra.items():
            self.experience_buffer.tensor_dict[key] = torch.zeros((h, n, *shape), dtype=torch.float32, device=dev)
        self.tensor_list += ["amp_obs", "enc_windows", "rand_action_mask"]
        self._latents = torch.zeros((n, self.net_cfg.latent_dim), device=dev)
        self._enc_windows = torch.zeros((n, self.enc_dim), device=dev)
        self._latent_steps_left = torch.zeros(n, dtype=torch.long, device=dev)
        self._explore_prob = exploration_probabilities(n).to(dev)
        self._fill_demo_buffer()

    def _fill_demo_buffer(self) -> None:
        """Fill the demo buffer and, in a fresh run (not a resumed one, whose AMP normaliser came from its
        checkpoint), seed the AMP normaliser with demonstration statistics."""
        fresh = self.epoch_num == 0
        while len(self.demo_buffer) < self.demo_buffer.capacity:
            n = min(self.calm.amp_batch_size, self.demo_buffer.capacity - len(self.demo_buffer))
            sample = self._sample_demo(n)
            if fresh:
                self.model.amp_norm.update(sample["enc_windows"])
            self.demo_buffer.store(**sample)

    # ------------------------------------------------------------------ motion data
    def _sample_demo(self, n: int) -> dict[str, Tensor]:
        s = self.motion_lib.sample_encoder_and_demo_windows(
            n, self.net_cfg.enc_steps, self.net_cfg.disc_steps, self.calm.motion_dt)
        return {"amp_obs": s.demo_windows.reshape(n, -1).to(self.ppo_device),
                "enc_windows": s.enc_windows.reshape(n, -1).to(self.ppo_device)}

    def _sample_align_pairs(self, n: int) -> tuple[Tensor, Tensor]:
        """Two encoder windows (n, enc_dim) per sample, same clip, end times differing by U(0, max_shift) s."""
        steps, dt = self.net_cfg.enc_steps, self.calm.motion_dt
        clip_ids, end0, w0 = self.motion_lib.sample_amp_windows(n, steps, dt)
        shift = torch.rand(end0.shape, device=end0.device) * self.calm.align_max_shift
        w1 = self.motion_lib.amp_obs_window(clip_ids, (end0 - shift).clamp_min(0.0), steps, dt)
        return w0.reshape(n, -1).to(self.ppo_device), w1.reshape(n, -1).to(self.ppo_device)

    @torch.no_grad()
    def _refresh_latents(self, env_mask: Tensor) -> None:
        """Resample z for the envs in ``env_mask`` (N,) bool from random clip windows."""
        ids = env_mask.nonzero(as_tuple=False).flatten()
        if ids.numel() == 0:
            return
        _, _, windows = self.motion_lib.sample_amp_windows(ids.numel(), self.net_cfg.enc_steps, self.calm.motion_dt)
        windows = windows.reshape(ids.numel(), -1).to(self.ppo_device)
        self.model.eval()
        self._enc_windows[ids] = windows
        self._latents[ids] = self.model.encode(windows)
        self._latent_steps_left[ids] = torch.randint(
            self.calm.latent_steps_min, self.calm.latent_steps_max, (ids.numel(),), device=self.ppo_device)

    # ------------------------------------------------------------------ rollout
    def _model_inputs(self, obs: dict[str, Tensor]) -> dict[str, Any]:
        return {"is_train": False, "prev_actions": None, "obs": self._preproc_obs(obs["obs"]),
                "rnn_states": None, "latents": self._latents}

    def get_action_values(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        self.model.eval()
        with torch.no_grad():
            return self.model(self._model_inputs(obs))

    def get_values(self, obs: dict[str, Tensor]) -> Tensor:
        return self.get_action_values(obs)["values"]

    def _env_tensor(self, infos: dict[str, Any], key: str) -> Tensor:
        if key not in infos:
            raise KeyError(f"CALM needs extras[{key!r}] from the env step; got extras keys {sorted(infos)}")
        return torch.as_tensor(infos[key], device=self.ppo_device)

    def play_steps(self) -> dict[str, Any]:
        buf = self.experience_buffer
        step_time = 0.0
        for n in range(self.horizon_length):
            self._refresh_latents(self.dones.bool() | (self._latent_steps_left <= 0))
            res = self.get_action_values(self.obs)
            if self.calm.eps_greedy:
                explore = torch.rand(self.num_actors, device=self.ppo_device) < self._explore_prob
                res["actions"] = torch.where(explore[:, None], res["actions"], res["mus"])
                res["neglogpacs"] = self.model.neglogp(
                    res["actions"], res["mus"], res["sigmas"], torch.log(res["sigmas"]))
            else:
                explore = torch.ones(self.num_actors, dtype=torch.bool, device=self.ppo_device)
            buf.update_data("obses", n, self.obs["obs"])
            buf.update_data("dones", n, self.dones)
            for k in self.update_list:
                buf.update_data(k, n, res[k])
            buf.update_data("enc_windows", n, self._enc_windows)
            buf.update_data("rand_action_mask", n, explore.float())

            t0 = time.perf_counter()
            self.obs, _, self.dones, infos = self.env_step(res["actions"])
            step_time += time.perf_counter() - t0

            amp_obs = self._env_tensor(infos, "amp_obs").float()
            if amp_obs.shape != (self.num_actors, self.amp_dim):
                raise ValueError(
                    f"extras['amp_obs'] has shape {tuple(amp_obs.shape)}, CALM expects "
                    f"({self.num_actors}, {self.amp_dim}) = {self.net_cfg.disc_steps} frames x "
                    f"{self.net_cfg.amp_frame_dim}; check network.amp_frame_dim / disc_steps against the env"
                )
            terminate = self._env_tensor(infos, "terminate").bool()
            time_outs = self._env_tensor(infos, "time_outs").bool()
            with torch.no_grad():
                rewards = losses.style_reward(self.model.disc_logits(amp_obs, self._latents),
                                              self.calm.disc_reward_scale)
            # The env resets done envs inside step, so their returned obs starts the next episode:
            # a time-out bootstraps from V(s_t, z) (as rl-games' value_bootstrap), a termination from 0.
            next_values = torch.where(time_outs.unsqueeze(1), res["values"], self.get_values(self.obs))
            next_values = next_values * (~terminate).float().unsqueeze(1)
            shaped = self.rewards_shaper(rewards)
            buf.update_data("amp_obs", n, amp_obs)
            buf.update_data("rewards", n, shaped)
            buf.update_data("next_values", n, next_values)
            buf.update_data("step_dones", n, self.dones.float())

            self.current_rewards.add_(rewards)
            self.current_shaped_rewards.add_(shaped)
            self.current_lengths.add_(1)
            done_ids = self.dones.nonzero(as_tuple=False)  # (k, 1), the indexing rl-games' meters expect
            self.game_rewards.update(self.current_rewards[done_ids])
            self.game_shaped_rewards.update(self.current_shaped_rewards[done_ids])
            self.game_lengths.update(self.current_lengths[done_ids])
            self.algo_observer.process_infos(infos, done_ids)
            not_done = 1.0 - self.dones.float()
            self.current_rewards.mul_(not_done.unsqueeze(1))
            self.current_shaped_rewards.mul_(not_done.unsqueeze(1))
            self.current_lengths.mul_(not_done)
            self._latent_steps_left.sub_(1)

        td = buf.tensor_dict
        advantages = gae_advantages(td["rewards"], td["values"], td["next_values"], td["step_dones"], self.gamma,
                                    self.tau)
        batch = buf.get_transformed_list(swap_and_flatten01, self.tensor_list)
        batch["returns"] = swap_and_flatten01(advantages + td["values"])
        batch["played_frames"] = self.batch_size
        batch["step_time"] = step_time
        self._log["style_reward"].append(td["rewards"].mean().item())
        self._log["explore_fraction"].append(td["rand_action_mask"].mean().item())
        return batch

    # ------------------------------------------------------------------ update
    def train_epoch(self):
        demo = self._sample_demo(self.calm.amp_batch_size)
        self.model.amp_norm.update(demo["enc_windows"])
        self.demo_buffer.store(**demo)
        self._align_pairs = self._sample_align_pairs(self.calm.amp_minibatch_size)
        result = super().train_epoch()
        self._store_replay()
        return result

    def prepare_dataset(self, batch_dict: dict[str, Any]) -> None:
        super().prepare_dataset(batch_dict)
        values = self.dataset.values_dict
        for key in ("amp_obs", "enc_windows", "rand_action_mask"):
            values[key] = batch_dict[key]
        self._epoch_agent = (batch_dict["amp_obs"], batch_dict["enc_windows"])
        # AMP statistics: the newest frame of every agent sample (the demo frames are added in train_epoch)
        self.model.amp_norm.update(batch_dict["amp_obs"][:, :self.net_cfg.amp_frame_dim])

    def _store_replay(self) -> None:
        amp_obs, windows = self._epoch_agent
        if len(self.replay_buffer) >= self.replay_buffer.capacity:
            keep = torch.rand(amp_obs.shape[0], device=amp_obs.device) < self.calm.replay_keep_prob
            amp_obs, windows = amp_obs[keep], windows[keep]
        self.replay_buffer.store(amp_obs=amp_obs, enc_windows=windows)
        self._epoch_agent = None

    def bound_loss(self, mu: Tensor) -> Tensor:
        return losses.action_bound_loss(mu, self.calm.bound_soft_limit)

    def _discriminator_terms(self, input_dict: dict[str, Tensor]) -> tuple[losses.DiscriminatorLossTerms, Tensor]:
        """Discriminator loss on agent ∪ replay vs demo windows; also returns E(demo windows) with gradient."""
        n = min(self.calm.amp_minibatch_size, input_dict["amp_obs"].shape[0])
        agent_amp, agent_win = input_dict["amp_obs"][:n], input_dict["enc_windows"][:n]
        if len(self.replay_buffer) > 0:
            replay = self.replay_buffer.sample(n)
            agent_amp = torch.cat([agent_amp, replay["amp_obs"]])
            agent_win = torch.cat([agent_win, replay["enc_windows"]])
        demo = self.demo_buffer.sample(n)
        with torch.no_grad():
            z_agent = self.model.encode(agent_win)
        z_demo_grad = self.model.encode(demo["enc_windows"])
        z_demo = z_demo_grad.detach()
        disc = self.model.calm.discriminator
        agent_logits = self.model.disc_logits(agent_amp, z_agent)
        demo_inputs = self.model.norm_amp(demo["amp_obs"]).detach().requires_grad_(True)
        demo_logits = disc(demo_inputs, z_demo)
        negative_logits = None
        if self.calm.negative_disc_samples:  # the paper's ternary term: demo windows under another sample's latent
            negative_logits = disc(demo_inputs.detach(), z_demo.roll(1, dims=0))
        terms = losses.conditional_discriminator_loss(
            agent_logits, demo_logits, demo_inputs, disc.logit_weight(), disc.weights(), negative_logits,
            self.calm.disc_logit_reg, self.calm.disc_grad_penalty, self.calm.disc_weight_decay,
        )
        return terms, z_demo_grad

    def calc_gradients(self, input_dict: dict[str, Tensor]) -> None:
        old_values = input_dict["old_values"]
        old_neglogp = input_dict["old_logp_actions"]
        advantage = input_dict["advantages"]
        old_mu, old_sigma = input_dict["mu"], input_dict["sigma"]
        returns = input_dict["returns"]
        mask = input_dict["rand_action_mask"]
        device_type = torch.device(self.ppo_device).type

        with torch.amp.autocast(device_type, enabled=self.mixed_precision, dtype=torch.bfloat16):
            latents = self.model.encode(input_dict["enc_windows"])
            res = self.model({"is_train": True, "prev_actions": input_dict["actions"],
                              "obs": self._preproc_obs(input_dict["obs"]), "latents": latents})
            mu, sigma = res["mus"], res["sigmas"]
            a_loss = self.actor_loss_func(old_neglogp, res["prev_neglogp"], advantage, self.ppo, self.e_clip)
            c_loss = common_losses.critic_loss(self.model, old_values, res["values"], self.e_clip, returns,
                                               self.clip_value).mean()
            b_loss = self.bound_loss(mu)
            count = mask.sum().clamp_min(1.0)
            a_loss, entropy, b_loss = [(x * mask).sum() / count for x in (a_loss, res["entropy"], b_loss)]
            ppo_loss = a_loss + self.critic_coef * c_loss - self.entropy_coef * entropy + self.bounds_loss_coef * b_loss

            disc, z_demo = self._discriminator_terms(input_dict)
            e0_win, e1_win = self._align_pairs
            pick = torch.randint(0, e0_win.shape[0], (min(z_demo.shape[0], e0_win.shape[0]),), device=e0_win.device)
            e0, e1 = self.model.encode(e0_win[pick]), self.model.encode(e1_win[pick])
            enc_loss, align, uniform = losses.encoder_regularization(
                e0, e1, z_demo, self.calm.enc_align_weight, self.calm.enc_uniform_weight)
            loss = ppo_loss + self.calm.disc_coef * disc.total + self.calm.enc_coef * enc_loss

        for param in self.model.parameters():
            param.grad = None
        self.scaler.scale(loss).backward()
        self.trancate_gradients_and_step()

        with torch.no_grad():
            kl = torch_ext.policy_kl(mu.detach(), sigma.detach(), old_mu, old_sigma, True)
        for key, value in (("disc_loss", disc.total), ("disc_bce", disc.bce), ("disc_agent_bce", disc.agent_bce),
                           ("disc_demo_bce", disc.demo_bce), ("disc_grad_penalty", disc.grad_penalty),
                           ("disc_logit_reg", disc.logit_reg), ("disc_agent_accuracy", disc.agent_accuracy),
                           ("disc_demo_accuracy", disc.demo_accuracy), ("enc_align", align),
                           ("enc_uniform", uniform), ("enc_loss", enc_loss)):
            self._log[key].append(float(value.detach()))
        if disc.negative_bce is not None:
            self._log["disc_negative_bce"].append(float(disc.negative_bce.detach()))
        self.train_result = (a_loss, c_loss, entropy, kl, self.last_lr, 1.0, mu.detach(), sigma.detach(), b_loss)

    # ------------------------------------------------------------------ logging and checkpoints
    def write_stats(self, total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses, entropies,
                    kls, last_lr, lr_mul, frame, scaled_time, scaled_play_time, curr_frames):
        super().write_stats(total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses, entropies,
                            kls, last_lr, lr_mul, frame, scaled_time, scaled_play_time, curr_frames)
        stats = {key: sum(v) / len(v) for key, v in self._log.items() if v}
        stats["disc_accuracy"] = 0.5 * (stats["disc_agent_accuracy"] + stats["disc_demo_accuracy"])
        if self.game_lengths.current_size > 0:
            stats["episode_length"] = float(self.game_lengths.get_mean())
        for key, value in stats.items():
            self.writer.add_scalar(f"calm/{key}", value, frame)
        stats.update(epoch=float(epoch_num), step_time_s=float(step_time), play_time_s=float(play_time),
                     update_time_s=float(update_time))
        self.epoch_stats.append(stats)
        self._log = defaultdict(list)
        for callback in self.epoch_callbacks:
            callback(self, stats)

    def get_full_state_weights(self) -> dict[str, Any]:
        state = super().get_full_state_weights()
        state["calm_config"] = self.checkpoint_config
        return state
