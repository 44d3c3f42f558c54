"""Inference side of the high-level policy: :func:`load_hlc` -> :class:`HighLevelPolicy`.

An HLC checkpoint is an rl-games checkpoint written by :class:`anyskill.hlc.train.HLCAgent`: ``model`` holds the
actor, critic and the observation/value normalisers; ``hlc_config`` the network section and the provenance
(goal, LLC checkpoint, CLIP weights, scale, seed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rl_games.algos_torch.model_builder import ModelBuilder
from torch import Tensor, nn

from anyskill.config.hlc import ANCHOR_SCALE
from anyskill.rl.runner import load_frozen


class HighLevelPolicy(nn.Module):
    """Frozen π_H: raw 223-D policy observations -> unit latents z (N, 64) for the LLC.

    A general (multi-prompt) policy reads the 223-D observation followed by the prompt's ``condition_dim``-D CLIP
    text feature (:mod:`anyskill.hlc.general`); :meth:`condition_on` fixes that feature, after which it takes 223-D
    observations like a per-prompt policy.
    """

    condition: Tensor | None

    def __init__(self, config: dict[str, Any]):
        super().__init__()
        self.config = config
        self.register_buffer("condition", None, persistent=False)
        self.model = ModelBuilder().load({"model": config["model"], "network": config["network"]}).build({
            "actions_num": config["actions_num"],
            "input_shape": (config["obs_dim"],),
            "num_seqs": 1,
            "value_size": 1,
            "normalize_input": config["normalize_input"],
            "normalize_value": config["normalize_value"],
        })
        self.eval()

    @property
    def obs_dim(self) -> int:
        return int(self.config["obs_dim"])

    @property
    def latent_dim(self) -> int:
        return int(self.config["actions_num"])

    @property
    def condition_dim(self) -> int:
        """Size of the text feature a general policy reads after the policy observation (0: a per-prompt policy)."""
        return int(self.config.get("condition_dim", 0))

    def condition_on(self, text_feature: Tensor) -> HighLevelPolicy:
        """Fix the prompt of a general policy: its unit CLIP text feature (E,) (``TextGoal.text_feature``) is
        appended to every 223-D observation; returns the policy."""
        if not self.condition_dim:
            raise ValueError("this high-level policy was trained for one prompt; only a general policy (trained with "
                             "a prompt set) takes a text feature")
        feature = text_feature.detach().float().flatten()
        if feature.numel() != self.condition_dim:
            raise ValueError(f"the policy reads {self.condition_dim}-D text features, got {feature.numel()}-D; use the "
                             f"CLIP it was trained with ({self.config.get('clip_weights')})")
        self.condition = feature.to(next(self.parameters()).device)
        return self

    def _inputs(self, obs: Tensor) -> Tensor:
        """The network's input for raw observations: a general policy's text feature appended when needed."""
        if self.condition_dim and obs.shape[-1] == self.obs_dim - self.condition_dim:
            if self.condition is None:
                raise ValueError("a general policy needs its prompt: call policy.condition_on(goal.text_feature) "
                                 f"(trained on {self.config.get('goal', 'a prompt set')})")
            obs = torch.cat([obs, self.condition.to(obs.device).expand(obs.shape[0], -1)], dim=-1)
        if obs.shape[-1] != self.obs_dim:
            raise ValueError(f"HighLevelPolicy expects observations (N, {self.obs_dim - self.condition_dim}), got "
                             f"{tuple(obs.shape)}")
        return obs

    @property
    def description(self) -> str:
        """The goal the policy was trained for (from the checkpoint)."""
        return str(self.config.get("goal", "unknown goal"))

    @torch.no_grad()
    def mean_action(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(mu (N, 64) in (-1, 1), sigma (N, 64)) for raw observations (N, 223)."""
        mu, log_std, _, _ = self.model.a2c_network({"obs": self.model.norm_obs(self._inputs(obs))})
        return mu, torch.exp(log_std)

    @property
    def latent_action(self) -> str:
        """How the env turns this policy's actions into latents (``HLCEnvConfig.latent_action`` at training;
        checkpoints from before the option: "free")."""
        return str((self.config.get("env") or {}).get("latent_action", "free"))

    @property
    def anchor_scale(self) -> float:
        """σ of an anchored latent action (``HLCEnvConfig.anchor_scale`` at training)."""
        return float((self.config.get("env") or {}).get("anchor_scale", ANCHOR_SCALE))

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """The env action (N, 64) for :meth:`anyskill.hlc.env.HighLevelEnv.step`: the mean action
        (``deterministic``) or mean + sigma * noise, clamped to [-1, 1]. For a policy with free latent actions
        (:attr:`latent_action` "free") it is L2-normalised, so it is the unit latent z itself; for an anchored
        policy it is the residual a, which the env (built with the policy's ``latent_action`` and ``anchor_scale``)
        turns into z around its anchor (the env's ``infos["z"]``)."""
        mu, sigma = self.mean_action(obs)
        a = mu if deterministic else mu + sigma * torch.randn(mu.shape, generator=generator, device=mu.device)
        a = a.clamp(-1.0, 1.0)
        return F.normalize(a, dim=-1) if self.latent_action == "free" else a

    @torch.no_grad()
    def value(self, obs: Tensor) -> Tensor:
        """(N,) critic value, denormalised."""
        _, _, value, _ = self.model.a2c_network({"obs": self.model.norm_obs(self._inputs(obs))})
        return self.model.denorm_value(value).squeeze(-1)


def load_hlc(checkpoint_path: str | Path, device: str | torch.device = "cpu") -> HighLevelPolicy:
    """Load a π_H checkpoint written by :func:`anyskill.hlc.train.train_hlc` as a frozen policy on ``device``."""
    return load_frozen(checkpoint_path, "hlc_config", HighLevelPolicy, "high-level policy",
                       "train one with `anyskill train-hlc` (anyskill.hlc.train_hlc)", device)
