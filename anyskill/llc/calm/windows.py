"""The demonstrations as the CALM agent reads them: motion windows on the agent's device.

A window is named by one integer, the grid row of its newest frame (:class:`~anyskill.motion.frame_grid.AmpFrameGrid`),
so the rollout stores window ids, not frames. :class:`MotionWindows` holds the motion library and its frame grid on
the agent's device — the library the env was built with when it is already there, else one copy made at
construction — so that every sampled id, frame and reference state is created where the networks are and nothing
crosses devices per step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from anyskill.humanoid.obs import policy_obs

POSE_DIM = 43
"""Width of the pose features of a policy observation: root height, then the 14 root-relative body positions in the
heading frame (1 + 14 x 3)."""


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


def same_device(a: torch.device | str, b: torch.device | str) -> bool:
    """Whether two device names mean the same device ("cuda" is "cuda:0", the default device)."""
    a, b = torch.device(a), torch.device(b)
    return a.type == b.type and (a.index or 0) == (b.index or 0)


def encode_unique(encode: Callable[[Tensor], Tensor], window_ids: Tensor,
                  windows: Callable[[Tensor], Tensor]) -> Tensor:
    """Latents (n, d) of windows named by ``window_ids`` (n,), encoding each distinct window once:
    ``encode(windows(unique_ids))`` then gathered back."""
    unique, inverse = torch.unique(window_ids, return_inverse=True)
    return encode(windows(unique))[inverse]


class MotionWindows:
    """The motion library and its AMP frame grid at spacing ``dt`` on ``device``, read as windows.

    ``model`` is the agent's CALM model (its ``encode_frames`` and encoder); ``key_poses``: precompute the pose
    features of every grid row (:attr:`poses`, for the key-pose reward). Every tensor this class creates is on
    ``device``, and the ids and times passed in must be too.
    """

    def __init__(self, lib: Any, dt: float, device: str | torch.device, model: Any, key_poses: bool = False):
        self.device = torch.device(device)
        self.lib = lib if same_device(lib.device, self.device) else lib.to(self.device)
        self.grid = self.lib.frame_grid(dt)
        self.model = model
        self.poses: Tensor | None = None
        """(G, POSE_DIM) pose features of every grid row (with ``key_poses``)."""
        if key_poses:
            self.poses = self.reference_obs(self.grid.clip_of, self.grid.time_of)[:, :POSE_DIM]

    def encoder_frames(self, ids: Tensor) -> Tensor:
        """(n, encoder.num_frames, F) raw frames the encoder reads from the windows ending at grid rows ``ids``."""
        enc = self.model.calm.encoder
        return self.grid.windows(ids, enc.num_frames, enc.stride)

    def encode(self, ids: Tensor) -> Tensor:
        """Unit latents (n, d) of the windows ``ids`` (n,), each distinct window encoded once (with gradient when
        enabled)."""
        return encode_unique(self.model.encode_frames, ids, self.encoder_frames)

    def demo_frames(self, n: int) -> Tensor:
        """(n, F) random demonstration frames, clips by weight (for the AMP normaliser's statistics)."""
        return self.grid.frames[self.grid.sample_window_ends(n, 1)]

    def demo_windows(self, ends: Tensor, steps: int) -> Tensor:
        """(n, steps * F) raw AMP histories, newest frame first, of the windows ending at grid rows ``ends``."""
        return self.grid.windows(ends, steps).reshape(len(ends), -1)

    def encoder_and_demo_ends(self, n: int, enc_steps: int, disc_steps: int) -> tuple[Tensor, Tensor]:
        """Grid rows (n,) of random encoder windows (clips by weight) and (n,) of a discriminator window inside each,
        its end uniform over the positions where it fits (reference facts §2.3)."""
        grid = self.grid
        enc_ends = grid.sample_window_ends(n, enc_steps)
        span = (grid.clip_len[grid.clip_of[enc_ends]].clamp_max(enc_steps) - 1 - disc_steps).clamp_min(0)
        back = (torch.rand(n, device=self.device) * (span + 1).float()).long().minimum(span)
        return enc_ends, grid.shift(enc_ends, -back)

    def earlier(self, ids: Tensor, max_shift_s: float) -> Tensor:
        """The windows U(0, ``max_shift_s``) s (rounded to grid rows) before ``ids``, within their clips (the
        alignment loss's nearby windows)."""
        shift = (torch.rand(len(ids), device=self.device) * max_shift_s / self.grid.dt).round().long()
        return self.grid.shift(ids, -shift)

    def reference_obs(self, clip_ids: Tensor, times: Tensor) -> Tensor:
        """(n, obs_dim) policy observations of the clips' reference states at ``times`` (n,) s."""
        s = self.lib.state_at(clip_ids, times)
        return policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel)

    def key_pose(self, ends: Tensor, steps: int) -> Tensor:
        """(n, POSE_DIM) pose features of the most distinctive frame of each ``steps``-frame window ending at grid
        rows ``ends`` (n,): the one farthest from the window's first frame (for a gesture: its peak, e.g. the arms
        at their highest). Needs ``key_poses``."""
        if self.poses is None:
            raise RuntimeError("key poses were not precomputed; build MotionWindows with key_poses=True")
        first = self.grid.clip_start[self.grid.clip_of[ends]]
        back = torch.arange(steps, device=ends.device)
        idx = torch.maximum(ends[:, None] - back, first[:, None])  # (n, steps) grid rows, newest first
        poses = self.poses[idx]  # (n, steps, POSE_DIM)
        far = (poses - poses[:, -1:]).pow(2).sum(-1).argmax(1)
        return poses[torch.arange(len(ends), device=ends.device), far]
