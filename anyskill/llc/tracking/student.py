"""The distilled low-level controller: encoder E(window) -> unit z and π_L(a | s, z, τ) (CPU route, stage 2).

The same interface as the CALM controller (:class:`~anyskill.llc.controller.LowLevelController`): ``encode``
(2-s AMP windows, newest first -> unit latents), ``act`` (policy obs, latent -> mean env action in [-1, 1]) and the
sizes, so the high-level policy, the evaluations and the notebooks use either. What the student adds is **timing**:
τ, the control steps since the latent of an env last changed, which the controller counts itself (a latent that
differs from the env's previous one restarts it at 0). A latent re-encoded every 5 steps from the window that
starts now (the high-level policy's rhythm, "sliding") therefore sees τ = 0..4; a latent held for seconds sees τ grow
and saturate after the window (``timing_horizon`` steps), from when on the student continues its skill from its own
state (CALM's semantics). Call :meth:`StudentController.reset_timing` when a rollout starts afresh.

The encoder reads every ``enc_stride``-th frame of its 60-frame window (per-feature standardised with statistics of
the training clips, fixed); the policy reads the 223-D observation (running-standardised during training, fixed
after), z and τ / timing_horizon. No discriminator is trained on this route: the style term of Eq. 3 uses latents,
not the discriminator, so nothing above needs one; ``has_discriminator`` is False.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from anyskill.config import CALMNetworkConfig
from anyskill.llc.nets import RunningNorm, mlp


class StudentNetworks(nn.Module):
    """Encoder and policy of the student; ``config`` (a dict of sizes) rebuilds it."""

    frame_mean: Tensor
    frame_std: Tensor

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.cfg = dict(config)
        c = self.cfg
        frames = -(-int(c["enc_steps"]) // int(c["enc_stride"]))
        self.register_buffer("frame_mean", torch.zeros(int(c["frame_dim"])))
        self.register_buffer("frame_std", torch.ones(int(c["frame_dim"])))
        self.encoder = mlp([frames * int(c["frame_dim"]), *c["enc_units"], int(c["latent_dim"])])
        self.obs_norm = RunningNorm(int(c["obs_dim"]))
        self.policy = mlp([int(c["obs_dim"]) + int(c["latent_dim"]) + 1, *c["policy_units"], int(c["actions_num"])])

    def encode(self, windows: Tensor) -> Tensor:
        """(N, enc_steps, F) or (N, enc_steps * F) AMP windows, newest first -> (N, latent) unit latents."""
        c = self.cfg
        w = windows.reshape(windows.shape[0], int(c["enc_steps"]), int(c["frame_dim"]))
        w = w[:, :: int(c["enc_stride"])]
        w = ((w - self.frame_mean) / self.frame_std).clamp(-5.0, 5.0)
        return F.normalize(self.encoder(w.flatten(1)), dim=-1)

    def action(self, obs: Tensor, z: Tensor, tau: Tensor) -> Tensor:
        """Raw policy output (N, actions) for obs (N, 223), z (N, latent), tau (N,) steps since z changed."""
        t = (tau.float().clamp(max=float(self.cfg["timing_horizon"])) / float(self.cfg["timing_horizon"]))[:, None]
        return self.policy(torch.cat([self.obs_norm(obs), z, t], -1))


class StudentController(nn.Module):
    """Frozen distilled controller with the :class:`LowLevelController` interface (module docstring)."""

    has_discriminator = False

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = config
        self.net = StudentNetworks(config["student"])
        self._last_z: Tensor | None = None
        self._tau: Tensor | None = None
        self.eval()

    @property
    def latent_dim(self) -> int:
        return int(self.net.cfg["latent_dim"])

    @property
    def obs_dim(self) -> int:
        return int(self.net.cfg["obs_dim"])

    @property
    def action_dim(self) -> int:
        return int(self.net.cfg["actions_num"])

    @property
    def enc_steps(self) -> int:
        return int(self.net.cfg["enc_steps"])

    @property
    def disc_steps(self) -> int:
        return CALMNetworkConfig().disc_steps

    @property
    def frame_dim(self) -> int:
        return int(self.net.cfg["frame_dim"])

    @property
    def motion_dt(self) -> float:
        return float(self.net.cfg["motion_dt"])

    @property
    def disc_reward_scale(self) -> float:
        return float("nan")

    def reset_timing(self) -> None:
        """Forget every env's latent: the next :meth:`act` starts τ at 0 everywhere."""
        self._last_z, self._tau = None, None

    @torch.no_grad()
    def encode(self, windows: Tensor) -> Tensor:
        return self.net.encode(windows)

    @torch.no_grad()
    def timing(self, z: Tensor) -> Tensor:
        """(N,) τ for latents z (N, latent) given to :meth:`act` now, advancing the per-env counters."""
        if self._last_z is None or self._last_z.shape != z.shape or self._tau is None:
            tau = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        else:
            changed = (z != self._last_z).any(-1)
            tau = torch.where(changed, torch.zeros_like(self._tau), self._tau + 1)
        self._last_z, self._tau = z.clone(), tau
        return tau

    @torch.no_grad()
    def act(self, obs: Tensor, z: Tensor) -> Tensor:
        """Mean action (N, actions) in [-1, 1] for policy obs (N, obs_dim) and latents (N, latent_dim); counts τ."""
        if obs.shape[-1] != self.obs_dim or z.shape[-1] != self.latent_dim:
            raise ValueError(f"act expects obs (N, {self.obs_dim}) and z (N, {self.latent_dim}), got "
                             f"{tuple(obs.shape)} and {tuple(z.shape)}")
        return self.net.action(obs, z, self.timing(z)).clamp(-1.0, 1.0)

    def discriminator_score(self, amp_obs: Tensor, z: Tensor) -> Tensor:
        """No discriminator on this route: NaN logits (N,)."""
        return torch.full((amp_obs.shape[0],), float("nan"), device=amp_obs.device)

    def style_reward(self, amp_obs: Tensor, z: Tensor) -> Tensor:
        return self.discriminator_score(amp_obs, z)


def save_student(path: str | Path, net: StudentNetworks, **extra: Any) -> Path:
    """Write a student checkpoint atomically (``student_config``, weights, and ``extra`` entries)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    weights = {k: v.cpu() for k, v in net.state_dict().items()}
    torch.save({"student_config": {"student": net.cfg}, "student": weights, "route": "tracking", **extra}, tmp)
    tmp.replace(path)
    return path


def load_student(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> StudentController:
    """A loaded student checkpoint dict -> frozen :class:`StudentController` on ``device``."""
    ctrl = StudentController(ckpt["student_config"])
    ctrl.net.load_state_dict(ckpt["student"])
    for p in ctrl.parameters():
        p.requires_grad_(False)
    return ctrl.to(device).eval()
