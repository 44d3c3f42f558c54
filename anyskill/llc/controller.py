"""Inference side of the low-level controller: :func:`load_llc` -> :class:`LowLevelController`.

A CALM checkpoint is an rl-games checkpoint (``torch.save`` of a dict) whose ``model`` entry holds
every network and normaliser (policy obs, value, per-frame AMP) and whose ``calm_config`` entry holds
what is needed to rebuild them (network sizes, obs/action sizes, CALM settings).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from anyskill.config import CALMNetworkConfig, CALMSettings
from anyskill.llc.calm import losses
from anyskill.llc.calm.networks import CALMBuilder, CALMModel
from anyskill.rl.runner import load_frozen


class LowLevelController(nn.Module):
    """Frozen CALM: encoder E, deterministic policy π_L(s, z), conditional discriminator D.

    All inputs are raw (unnormalised); the checkpoint's normalisers are applied inside.
    """

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = config
        builder = CALMBuilder()
        builder.load(config["network"])
        self.network_config: CALMNetworkConfig = builder.cfg
        self.model = CALMModel(builder).build({
            "actions_num": config["actions_num"],
            "input_shape": (config["obs_dim"],),
            "normalize_input": config["normalize_input"],
            "normalize_value": config["normalize_value"],
            "value_size": 1,
        })
        self.eval()

    @property
    def latent_dim(self) -> int:
        return self.network_config.latent_dim

    @property
    def obs_dim(self) -> int:
        return int(self.config["obs_dim"])

    @property
    def action_dim(self) -> int:
        return int(self.config["actions_num"])

    @property
    def enc_steps(self) -> int:
        return self.network_config.enc_steps

    @property
    def disc_steps(self) -> int:
        return self.network_config.disc_steps

    @property
    def frame_dim(self) -> int:
        return self.network_config.amp_frame_dim

    @property
    def motion_dt(self) -> float:
        """s between the AMP frames of the encoder and discriminator windows: the training env's control step."""
        return float(self._calm.get("motion_dt", CALMSettings.motion_dt))

    @property
    def disc_reward_scale(self) -> float:
        """The scale of the Eq. 2 reward the controller was trained with."""
        return float(self._calm.get("disc_reward_scale", CALMSettings.disc_reward_scale))

    @property
    def _calm(self) -> dict[str, Any]:
        return self.config.get("calm", {})

    has_discriminator = True

    def reset_timing(self) -> None:
        """Nothing to reset: CALM's policy has no timing input (the student of the tracking route has)."""

    @torch.no_grad()
    def encode(self, windows: Tensor) -> Tensor:
        """AMP windows (N, enc_steps, frame_dim) newest first, or flattened -> unit latents (N, latent_dim)."""
        return self.model.encode(windows)

    @torch.no_grad()
    def act(self, obs: Tensor, z: Tensor) -> Tensor:
        """Mean action (N, action_dim) in [-1, 1] for policy obs (N, obs_dim) and latents (N, latent_dim)."""
        if obs.shape[-1] != self.obs_dim or z.shape[-1] != self.latent_dim:
            raise ValueError(
                f"act expects obs (N, {self.obs_dim}) and z (N, {self.latent_dim}), got {tuple(obs.shape)} and "
                f"{tuple(z.shape)}"
            )
        norm_obs = self.model.norm_obs(obs)
        return self.model.calm.actor(norm_obs, z).clamp(-1.0, 1.0)

    @torch.no_grad()
    def discriminator_score(self, amp_obs: Tensor, z: Tensor) -> Tensor:
        """Conditional discriminator logits (N,) for AMP histories (N, k * frame_dim), newest frame first, k >=
        disc_steps (the newest disc_steps frames are scored), under z (N, latent)."""
        need = self.disc_steps * self.frame_dim
        if amp_obs.shape[-1] < need or amp_obs.shape[-1] % self.frame_dim:
            raise ValueError(f"AMP histories must hold at least {self.disc_steps} frames of {self.frame_dim} values, "
                             f"got shape {tuple(amp_obs.shape)}")
        return self.model.disc_logits(amp_obs[..., :need], z).squeeze(-1)

    @torch.no_grad()
    def style_reward(self, amp_obs: Tensor, z: Tensor) -> Tensor:
        """Paper Eq. 2 reward (N,) with the training scale from the checkpoint."""
        return losses.style_reward(self.discriminator_score(amp_obs, z), self.disc_reward_scale)


def load_llc(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> Any:
    """Load a low-level controller checkpoint as a frozen controller on ``device``: a CALM checkpoint written by the
    rl-games runner (-> :class:`LowLevelController`) or a distilled student of the tracking route (-> its
    :class:`~anyskill.llc.tracking.student.StudentController`, the same interface)."""
    path = Path(checkpoint_path)
    if path.is_file():
        state = torch.load(path, map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "student_config" in state:
            from anyskill.llc.tracking.student import load_student

            return load_student(state, device)
    return load_frozen(checkpoint_path, "calm_config", LowLevelController, "CALM",
                       "train one with `anyskill train-llc` (anyskill.llc.calm.train.train_llc)", device)
