"""CALM losses and the style reward as pure functions on tensors (paper Eqs. 1-2, reference facts §2.2).

Conventions: a discriminator *logit* l = D(s, z) before the sigmoid; "demo" = motion-capture windows
paired with the latent of the clip they come from, "agent" = simulated windows paired with the latent
the policy followed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class DiscriminatorLossTerms:
    """All terms of the conditional discriminator loss; ``total`` is what is minimised (before the
    agent's ``disc_coef``)."""

    total: Tensor
    bce: Tensor
    agent_bce: Tensor
    demo_bce: Tensor
    negative_bce: Tensor | None
    logit_reg: Tensor
    grad_penalty: Tensor
    weight_decay: Tensor
    agent_accuracy: Tensor
    demo_accuracy: Tensor


def gradient_penalty(demo_logits: Tensor, demo_inputs: Tensor) -> Tensor:
    """mean_i ||dD(x_i)/dx_i||^2; ``demo_inputs`` (N, F) must require grad and produce ``demo_logits`` (N, 1).

    The graph is kept (create_graph) so the penalty itself can be minimised.
    """
    if not demo_inputs.requires_grad:
        raise ValueError("gradient_penalty: demo_inputs must require grad (call .requires_grad_() before D)")
    (grad,) = torch.autograd.grad(demo_logits.sum(), demo_inputs, create_graph=True, allow_unused=True)
    if grad is None:  # D does not depend on its input: the penalty is exactly zero
        return demo_logits.new_zeros(())
    return grad.pow(2).sum(dim=-1).mean()


def conditional_discriminator_loss(
    agent_logits: Tensor,
    demo_logits: Tensor,
    demo_inputs: Tensor,
    logit_weight: Tensor,
    weights: list[Tensor],
    negative_logits: Tensor | None = None,
    logit_reg: float = 0.01,
    grad_penalty_weight: float = 5.0,
    weight_decay: float = 1e-4,
) -> DiscriminatorLossTerms:
    """Conditional discriminator loss (paper Eq. 1, facts §2.2).

    agent_logits (Na, 1): D(agent ∪ replay windows, z_agent), target 0.
    demo_logits (Nd, 1): D(demo windows, z_demo), target 1, computed from ``demo_inputs`` (normalised
    demo AMP obs, requiring grad) for the gradient penalty.
    negative_logits (Nn, 1) or None: D(demo windows, mismatched latent z'), target 0 — the paper's
    ternary term. ``None`` reproduces the reference code (which computes but does not use it).
    BCE part: 0.5 * [BCE(agent, 0) + BCE(demo, 1) (+ BCE(negative, 0))], i.e. Eq. 1 scaled by 1/2.
    Regularisers: logit_reg * ||w_logit||^2 + grad_penalty_weight * mean ||dD/dx_demo||^2
    + weight_decay * sum ||W||^2 over ``weights``.
    """
    agent_bce = F.binary_cross_entropy_with_logits(agent_logits, torch.zeros_like(agent_logits))
    demo_bce = F.binary_cross_entropy_with_logits(demo_logits, torch.ones_like(demo_logits))
    bce = agent_bce + demo_bce
    negative_bce = None
    if negative_logits is not None:
        negative_bce = F.binary_cross_entropy_with_logits(negative_logits, torch.zeros_like(negative_logits))
        bce = bce + negative_bce
    bce = 0.5 * bce
    logit_term = logit_weight.pow(2).sum()
    gp = gradient_penalty(demo_logits, demo_inputs)
    decay = torch.stack([w.pow(2).sum() for w in weights]).sum()
    total = bce + logit_reg * logit_term + grad_penalty_weight * gp + weight_decay * decay
    return DiscriminatorLossTerms(
        total=total, bce=bce, agent_bce=agent_bce, demo_bce=demo_bce, negative_bce=negative_bce,
        logit_reg=logit_term, grad_penalty=gp, weight_decay=decay,
        agent_accuracy=(agent_logits.detach() < 0).float().mean(),
        demo_accuracy=(demo_logits.detach() > 0).float().mean(),
    )


def alignment_loss(e0: Tensor, e1: Tensor) -> Tensor:
    """mean_i ||e0_i - e1_i||^2 for encodings (N, d) of two nearby windows of the same clip."""
    return (e0 - e1).pow(2).sum(dim=-1).mean()


def uniformity_loss(e: Tensor, t: float = 2.0) -> Tensor:
    """log mean_{i<j} exp(-t ||e_i - e_j||^2) over encodings (N, d), N >= 2 (Wang & Isola 2020)."""
    n = e.shape[0]
    if n < 2:
        raise ValueError(f"uniformity_loss needs at least 2 encodings, got {n}")
    sq_norm = e.pow(2).sum(dim=-1)
    sq_dist = (sq_norm[:, None] + sq_norm[None, :] - 2.0 * e @ e.T).clamp_min(0.0)
    i, j = torch.triu_indices(n, n, offset=1, device=e.device)
    pair = -t * sq_dist[i, j]
    return torch.logsumexp(pair, dim=0) - torch.log(torch.tensor(float(pair.numel()), device=e.device))


def encoder_regularization(e0: Tensor, e1: Tensor, e_batch: Tensor, align_weight: float = 1.0,
                           uniform_weight: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """(total, align, uniform): align_weight * alignment(e0, e1) + uniform_weight * uniformity(e_batch).

    The agent multiplies ``total`` by ``enc_coef`` (0.1), giving the paper's 0.1 / 0.05 weights.
    """
    align = alignment_loss(e0, e1)
    uniform = uniformity_loss(e_batch)
    return align_weight * align + uniform_weight * uniform, align, uniform


def style_reward(logits: Tensor, scale: float = 2.0, floor: float = 1e-4) -> Tensor:
    """r = -log(max(1 - sigmoid(D(s, z)), floor)) * scale (paper Eq. 2); same shape as ``logits``."""
    prob = torch.sigmoid(logits)
    return -torch.log(torch.clamp_min(1.0 - prob, floor)) * scale


def action_bound_loss(mu: Tensor, soft_bound: float = 1.0) -> Tensor:
    """Per-sample sum_dims [max(mu - b, 0)^2 + min(mu + b, 0)^2] (N,) keeping mean actions in [-b, b]."""
    high = torch.clamp_min(mu - soft_bound, 0.0).pow(2)
    low = torch.clamp_max(mu + soft_bound, 0.0).pow(2)
    return (high + low).sum(dim=-1)
