"""Small stand-ins for the humanoid env and the motion library, for fast CALM tests.

FakeMotionLibrary: C clips; the AMP frame of clip c at time t is a fixed sinusoid pattern
(F values). FakeHumanoidEnv: N point-like "characters" whose AMP frame x (N, F) follows
x' = 0.8 x + 0.4 tanh(W a); both expose the same API the CALM agent uses.
"""

from __future__ import annotations

from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import torch

from anyskill.motion.frame_grid import AmpFrameGrid

Tensor = torch.Tensor


class FakeMotionLibrary:
    """The sampling API of :class:`anyskill.motion.library.MotionLibrary` on synthetic clips."""

    def __init__(self, num_clips: int = 4, frame_dim: int = 6, duration: float = 4.0, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.num_clips = num_clips
        self.frame_dim = frame_dim
        self.durations = torch.full((num_clips,), duration)
        self.weights = torch.ones(num_clips) / num_clips
        self.freq = 1.0 + 3.0 * torch.rand(num_clips, frame_dim, generator=g)
        self.phase = 6.28 * torch.rand(num_clips, frame_dim, generator=g)
        self.offset = torch.randn(num_clips, frame_dim, generator=g)
        self.device = torch.device("cpu")

    def frames(self, clip_ids: Tensor, times: Tensor) -> Tensor:
        """(..., F) frames of clips (...) at times (...) s."""
        return self.offset[clip_ids] + torch.sin(self.freq[clip_ids] * times[..., None] + self.phase[clip_ids])

    def amp_obs_at(self, clip_ids: Tensor, times: Tensor) -> Tensor:
        return self.frames(clip_ids, times)

    def frame_grid(self, dt: float) -> AmpFrameGrid:
        return AmpFrameGrid.from_library(self, dt)

    def sample_clips(self, n: int) -> Tensor:
        return torch.multinomial(self.weights, n, replacement=True)

    def sample_times(self, clip_ids: Tensor, truncate_time: float | None = None) -> Tensor:
        span = self.durations[clip_ids] - (truncate_time or 0.0)
        return torch.rand(clip_ids.shape) * span.clamp_min(0.0)

    def amp_obs_window(self, clip_ids: Tensor, end_times: Tensor, num_steps: int, dt: float) -> Tensor:
        times = (end_times[:, None] - torch.arange(num_steps) * dt).clamp_min(0.0)
        return self.frames(clip_ids[:, None].expand_as(times), times)

    def sample_amp_windows(self, n: int, num_steps: int, dt: float):
        ids = self.sample_clips(n)
        low = self.durations[ids].clamp_max((num_steps - 1) * dt)
        ends = low + torch.rand(n) * (self.durations[ids] - low)
        return ids, ends, self.amp_obs_window(ids, ends, num_steps, dt)

    def sample_encoder_and_demo_windows(self, n: int, enc_steps: int = 60, disc_steps: int = 10,
                                        dt: float = 1.0 / 30.0):
        ids, enc_end, enc = self.sample_amp_windows(n, enc_steps, dt)
        span = (self.durations[ids].clamp_max((enc_steps - 1) * dt) - disc_steps * dt).clamp_min(0.0)
        demo_end = (enc_end - torch.rand(n) * span).clamp_min(0.0)
        return SimpleNamespace(clip_ids=ids, enc_end_times=enc_end, enc_windows=enc, demo_end_times=demo_end,
                               demo_windows=self.amp_obs_window(ids, demo_end, disc_steps, dt))


class FakeHumanoidEnv:
    """Vec-env with the HumanoidEnv interface (obs dict, zero reward, dones, extras with AMP history)."""

    def __init__(self, num_envs: int = 8, frame_dim: int = 6, num_actions: int = 4, amp_steps: int = 10,
                 episode_length: int = 24, seed: int = 0, **_: object):
        g = torch.Generator().manual_seed(seed + 1)
        self.num_envs = num_envs
        self.num_actions = num_actions
        self.num_amp_obs_per_step = frame_dim
        self.amp_steps = amp_steps
        self.num_obs = 2 * frame_dim + 1
        self.episode_length = episode_length
        self.motion_lib = FakeMotionLibrary(frame_dim=frame_dim, seed=seed)
        self.mix = torch.randn(num_actions, frame_dim, generator=g)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.num_obs,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (num_actions,), np.float32)
        self.amp_observation_space = gym.spaces.Box(-np.inf, np.inf, (frame_dim * amp_steps,), np.float32)
        self.x = torch.zeros(num_envs, frame_dim)
        self.prev = torch.zeros(num_envs, frame_dim)
        self.progress = torch.zeros(num_envs, dtype=torch.long)
        self.history = torch.zeros(num_envs, amp_steps, frame_dim)

    def snapshot(self) -> dict[str, Tensor]:
        return {k: getattr(self, k).clone() for k in ("x", "prev", "progress", "history")}

    def restore(self, state: dict[str, Tensor]) -> None:
        for k, v in state.items():
            setattr(self, k, v.clone())

    def _obs(self) -> dict[str, Tensor]:
        phase = self.progress[:, None].float() / self.episode_length
        return {"obs": torch.cat([self.x, self.x - self.prev, phase], -1)}

    def _reset_ids(self, ids: Tensor) -> None:
        self.x[ids] = 0.3 * torch.randn(len(ids), self.x.shape[1])
        self.prev[ids] = self.x[ids]
        self.progress[ids] = 0
        self.history[ids] = self.x[ids, None].expand(-1, self.amp_steps, -1)

    def reset(self) -> dict[str, Tensor]:
        self._reset_ids(torch.arange(self.num_envs))
        return self._obs()

    def step(self, actions: Tensor):
        a = torch.as_tensor(actions, dtype=torch.float32).clamp(-1.0, 1.0)
        self.prev = self.x.clone()
        self.x = 0.8 * self.x + 0.4 * torch.tanh(a @ self.mix)
        self.progress += 1
        self.history = torch.cat([self.x[:, None], self.history[:, :-1]], 1)
        terminate = self.x.abs().amax(-1) > 2.5
        time_outs = (self.progress >= self.episode_length - 1) & ~terminate
        dones = terminate | time_outs
        amp_obs = self.history.flatten(1).clone()
        terminal_obs = self._obs()["obs"]
        ids = dones.nonzero().flatten()
        if ids.numel():
            self._reset_ids(ids)
        extras = {"terminate": terminate, "fallen": terminate, "time_outs": time_outs, "amp_obs": amp_obs,
                  "terminal_obs": terminal_obs, "sim_blowups": 0}
        return self._obs(), torch.zeros(self.num_envs), dones, extras
