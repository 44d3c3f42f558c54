"""The high-level policy's reward (paper Eq. 3) and the reference implementation's variant.

Paper, Eq. 3, per step:

    r_H = w_c * cos(f_I, f_d) + w_s * exp(-4 * ||z - z_hat||_2)

with f_I the CLIP feature of the rendered frame (or of the state-projection MLP), f_d the text feature, z the
high-level action (a unit latent) and z_hat "a sample from Z": we take the nearest of a fixed set of encoded
reference latents (``reference_latents``), as the authors' code does.

The authors' code (reference facts §3.2-3.3) instead uses, per HLC step of 5 LLC steps,

    R = 0.5 * mean_t(0.8 * cos_t) + 0.4 * max_k (cos(z, e_k) + 1) / 2

Select it with ``variant="official"``. Our default weights w_c = 0.4, w_s = 0.4 equal that code's effective
weights (0.5 * 0.8 and 0.4).

``w_velocity`` > 0 adds the ASE-style velocity reward of Table 3's "+ vel. rew." row,
w_v · exp(-0.25 (v* - v·h)²) (:func:`anyskill.reward.variants.velocity_reward`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anyskill.config.reward import RewardConfig
from anyskill.reward.variants import velocity_reward

Tensor = torch.Tensor


def nearest_reference(z: Tensor, reference_latents: Tensor) -> tuple[Tensor, Tensor]:
    """z (N, L) and references (K, L), both unit norm -> (z_hat (N, L), index (N,)): the max-cosine reference."""
    idx = (z @ reference_latents.T).argmax(dim=-1)
    return reference_latents[idx], idx


def latent_alignment_reward(z: Tensor, reference_latents: Tensor, cfg: RewardConfig = RewardConfig()) -> Tensor:
    """(N,) the latent-representation alignment term of Eq. 3: exp(-4 ||z - z_hat||) (paper) or
    max_k (cos(z, e_k) + 1) / 2 (official). (Not the LLC's style reward of Eq. 2,
    :func:`anyskill.llc.calm.losses.style_reward`.)"""
    z = F.normalize(z, dim=-1)
    if cfg.variant == "official":
        return ((z @ reference_latents.T).amax(dim=-1) + 1.0) / 2.0
    z_hat, _ = nearest_reference(z, reference_latents)
    return torch.exp(-cfg.style_sharpness * (z - z_hat).norm(dim=-1))


def hlc_reward(similarities: Tensor, z: Tensor, reference_latents: Tensor,
               cfg: RewardConfig = RewardConfig(), root_velocity: Tensor | None = None) -> dict[str, Tensor]:
    """Reward of one HLC step.

    similarities (N, T): cos(f_I, f_d) at each of the T LLC steps the latent z (N, L) was held; reference_latents
    (K, L) unit norm; root_velocity (N, 3) m/s, the root's mean velocity over the step (needed when
    ``cfg.w_velocity`` > 0). Returns a dict of (N,) tensors: ``reward``, ``clip`` (mean similarity), ``latent`` (the
    latent alignment term), ``velocity`` (the velocity term before its weight; 0 when off).
    """
    sim = similarities.mean(dim=-1)
    latent = latent_alignment_reward(z, reference_latents, cfg)
    if cfg.variant == "official":
        reward = 0.5 * 0.8 * sim + 0.4 * latent
    else:
        reward = cfg.w_clip * sim + cfg.w_style * latent
    velocity = torch.zeros_like(sim)
    if cfg.w_velocity > 0:
        if root_velocity is None:
            raise ValueError("RewardConfig.w_velocity > 0 needs the root velocity (root_velocity=...)")
        velocity = velocity_reward(root_velocity, cfg.target_speed, cfg.heading)
        reward = reward + cfg.w_velocity * velocity
    return {"reward": reward, "clip": sim, "latent": latent, "velocity": velocity}
