"""The rollout's latent schedule: which motion window each env's latent encodes, for how long, and the clip (or key
pose) an env coupled to its latent is rewarded for following (:mod:`anyskill.llc.calm.agent`, step 1 of an epoch).

Each env follows z = E(window) of a weighted-random window, resampled at every episode start and after
U{latent_steps_min .. latent_steps_max - 1} steps. With ``latent_from_reset_prob`` > 0 an episode that starts from a
clip's reference state gets (with that probability) the latent of a window of the same clip around its start time,
and with ``latent_from_default_prob`` > 0 a standing start that of a random clip's beginning; such a coupled latent
is held until the clip ends, the clip is tracked in time (``track_reward_weight``) or, for a standing start, its key
pose held as a time-free target (``key_pose_reward_weight``). Options of ours; CALM samples latents independently of
the start state (see :class:`~anyskill.config.llc.CALMSettings`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from anyskill.config.llc import CALMSettings
from anyskill.llc.calm.windows import POSE_DIM, MotionWindows

STATE_KEYS = {"_latents": "latents", "_latent_ids": "window_ids", "_latent_steps_left": "steps_left",
              "_reset_clip": "reset_clip", "_reset_time": "reset_time", "_reset_default": "reset_default",
              "_track_clip": "track_clip", "_track_time": "track_time", "_slide_countdown": "slide_countdown",
              "_key_pose_on": "key_pose_on", "_key_pose": "key_pose"}
"""Key in a resume file's ``rollout`` section -> attribute (the keys name the agent attributes of earlier versions)."""


class LatentSchedule:
    """Per-env latent state of the rollout, (N, ...) tensors on the windows' device (module docstring)."""

    def __init__(self, num_envs: int, latent_dim: int, enc_steps: int, calm: CALMSettings, windows: MotionWindows):
        n, dev = num_envs, windows.device
        self.calm, self.enc_steps, self.windows = calm, enc_steps, windows
        self.latents = torch.zeros((n, latent_dim), device=dev)
        self.window_ids = torch.zeros(n, dtype=torch.long, device=dev)
        """(N,) grid row naming each env's window."""
        self.steps_left = torch.zeros(n, dtype=torch.long, device=dev)
        self.reset_clip = torch.full((n,), -1, dtype=torch.long, device=dev)
        """(N,) clip the episode started from at the last step (-1: none), and ``reset_time`` its time (s)."""
        self.reset_time = torch.zeros(n, device=dev)
        self.reset_default = torch.zeros(n, dtype=torch.bool, device=dev)
        self.track_clip = torch.full((n,), -1, dtype=torch.long, device=dev)
        """(N,) clip tracked (-1: none) at ``track_time`` (s)."""
        self.track_time = torch.zeros(n, device=dev)
        self.slide_countdown = torch.zeros(n, dtype=torch.long, device=dev)
        self.key_pose_on = torch.zeros(n, dtype=torch.bool, device=dev)
        self.key_pose = torch.zeros(n, POSE_DIM, device=dev)

    def state_dict(self) -> dict[str, Tensor]:
        return {key: getattr(self, attr).clone() for key, attr in STATE_KEYS.items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, attr in STATE_KEYS.items():
            setattr(self, attr, state[key].to(self.windows.device))

    def note_resets(self, reset_clip: Any = None, reset_time: Any = None, reset_default: Any = None) -> None:
        """Record where new episodes started (the env's ``reset_clip``, ``reset_time``, ``reset_default``; None:
        keep the previous record)."""
        dev = self.windows.device
        if reset_clip is not None:
            self.reset_clip = torch.as_tensor(reset_clip, device=dev).long()
        if reset_time is not None:
            self.reset_time = torch.as_tensor(reset_time, device=dev).float()
        if reset_default is not None:
            self.reset_default = torch.as_tensor(reset_default, device=dev).bool()

    @torch.no_grad()
    def refresh(self, env_mask: Tensor) -> None:
        """New latents for the envs in ``env_mask`` (N,) bool: random clip windows, or, for an episode that has just
        started, with probability ``latent_from_reset_prob`` (reference-state starts) / ``latent_from_default_prob``
        (default-pose starts) a window of the clip it starts from / of a random clip's beginning. A coupled latent
        is held (and the clip tracked) until the clip ends, and never ends before the clip's first full window."""
        ids = env_mask.nonzero(as_tuple=False).flatten()
        if ids.numel() == 0:
            return
        cfg, steps, grid, dev = self.calm, self.enc_steps, self.windows.grid, self.windows.device
        ends = grid.sample_window_ends(ids.numel(), steps)
        hold = torch.randint(cfg.latent_steps_min, cfg.latent_steps_max, (ids.numel(),), device=dev)
        self.track_clip[ids] = -1
        clip = torch.full((ids.numel(),), -1, dtype=torch.long, device=dev)
        start_time = torch.zeros(ids.numel(), device=dev)
        if cfg.latent_from_reset_prob > 0:
            draw = torch.rand(ids.numel(), device=dev)
            couple = (self.reset_clip[ids] >= 0) & (draw < cfg.latent_from_reset_prob)
            clip[couple] = self.reset_clip[ids][couple]
            start_time[couple] = self.reset_time[ids][couple]
        from_default = torch.zeros(ids.numel(), dtype=torch.bool, device=dev)
        if cfg.latent_from_default_prob > 0:
            draw = torch.rand(ids.numel(), device=dev)
            from_default = self.reset_default[ids] & (draw < cfg.latent_from_default_prob)
            if from_default.any():
                clip[from_default] = grid.sample_clips(int(from_default.sum()))
        coupled = clip >= 0
        if coupled.any():
            c = clip[coupled]
            first_full = grid.clip_start[c] + (grid.clip_len[c] - 1).clamp_max(steps - 1)
            start = grid.index_at(c, start_time[coupled])
            ahead = torch.randint(0, steps, (len(c),), device=dev)  # the window reaches up to 2 s past the start
            ends[coupled] = torch.maximum(grid.shift(start, ahead), first_full)
            remaining = ((self.windows.lib.durations[c] - start_time[coupled]) / cfg.motion_dt).long()
            hold[coupled] = remaining.clamp_min(cfg.latent_steps_min)
            self.track_clip[ids[coupled]] = c
            self.track_time[ids[coupled]] = start_time[coupled]
        self.key_pose_on[ids] = False
        if cfg.key_pose_reward_weight > 0 and from_default.any():
            # a standing start holds its clip's key pose as a time-free target instead of tracking the clip in time
            key = from_default & coupled
            self.track_clip[ids[key]] = -1
            self.key_pose_on[ids[key]] = True
            self.key_pose[ids[key]] = self.windows.key_pose(ends[key], steps)
        self.window_ids[ids] = ends
        self.latents[ids] = self.windows.encode(ends)
        self.steps_left[ids] = hold
        self.slide_countdown[ids] = cfg.track_latent_every

    @torch.no_grad()
    def slide(self) -> None:
        """``track_latent_every``: tracked envs whose countdown ran out get the latent of the window ending
        ``track_latent_lookahead`` s after their tracked clip time."""
        self.slide_countdown.sub_(1)
        slide = (self.track_clip >= 0) & (self.slide_countdown <= 0)
        ids = slide.nonzero().flatten()
        if ids.numel() == 0:
            return
        ends = self.windows.grid.index_at(self.track_clip[ids], self.track_time[ids] + self.calm.track_latent_lookahead)
        self.window_ids[ids] = ends
        self.latents[ids] = self.windows.encode(ends)
        self.slide_countdown[ids] = self.calm.track_latent_every

    def track_reward(self, reached_obs: Tensor, done: Tensor) -> Tensor:
        """(N,) tracking reward of the states each env reached (``reached_obs`` (N, obs_dim)) against its reference
        clip one control step later; 0 where no clip is tracked. Advances the tracked clip time; tracking ends with
        the episode or the clip."""
        cfg = self.calm
        reward = torch.zeros(len(self.track_clip), device=self.windows.device)
        if cfg.track_reward_weight <= 0:
            return reward
        active = self.track_clip >= 0
        self.track_time[active] += cfg.motion_dt
        active &= self.track_time <= self.windows.lib.durations[self.track_clip.clamp_min(0)]
        ids = active.nonzero().flatten()
        if ids.numel():
            ref = self.windows.reference_obs(self.track_clip[ids], self.track_time[ids])
            k = POSE_DIM  # obs: root height, then root-relative body positions (heading frame)
            sq = (reached_obs[ids, 1:k] - ref[:, 1:k]).pow(2).reshape(len(ids), -1, 3).sum(-1)  # (n, B - 1) m^2
            sq = torch.cat([sq, (reached_obs[ids, :1] - ref[:, :1]).pow(2)], dim=1)  # and the root height's
            reward[ids] = self._pose_reward(sq.sum(-1))
        self.track_clip[~active | done] = -1
        return reward

    def key_pose_reward(self, reached_obs: Tensor, done: Tensor) -> Tensor:
        """(N,) key-pose reward of the reached states for envs holding a key pose (0 elsewhere); ends with the
        episode or the latent."""
        reward = torch.zeros(len(self.key_pose_on), device=self.windows.device)
        on = self.key_pose_on
        if bool(on.any()):
            sq = (reached_obs[on, :POSE_DIM] - self.key_pose[on]).pow(2)
            total = sq[:, 1:].reshape(int(on.sum()), -1, 3).sum(-1).sum(-1) + sq[:, 0]
            reward[on] = self._pose_reward(total)
        self.key_pose_on &= ~done
        return reward

    def _pose_reward(self, total: Tensor) -> Tensor:
        """0.5 [exp(-scale e) + exp(-scale_wide e)] of squared distances e (n,) m^2."""
        return 0.5 * (torch.exp(-self.calm.track_reward_scale * total)
                      + torch.exp(-self.calm.track_reward_scale_wide * total))
