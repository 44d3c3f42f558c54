"""Small batched terms of the humanoid environment: termination rules and random states.

Each term is a pure function over batched tensors (N environments, B bodies), composed by
:class:`anyskill.sim.env.HumanoidEnv`.
"""

from __future__ import annotations

import torch

from anyskill.humanoid.model import HumanoidModel

Tensor = torch.Tensor

CONTACT_FORCE_THRESHOLD = 0.1
"""N; a body touches something when any component of its net contact force exceeds this (facts §2.5)."""
HEAD_MIN_TERMINATION_HEIGHT = 0.15
"""m; the head's termination height is max(this, termination_height) (facts §2.5)."""


def termination_heights(model: HumanoidModel, termination_height: float) -> Tensor:
    """(B,) m: ``termination_height`` for every body, max(0.15, termination_height) for the head."""
    heights = torch.full((model.num_bodies,), float(termination_height))
    if "head" in model.body_names:
        heights[model.body_index("head")] = max(HEAD_MIN_TERMINATION_HEIGHT, termination_height)
    return heights


def non_contact_body_mask(model: HumanoidModel) -> Tensor:
    """(B,) bool: bodies that may not touch the ground without counting as a fall (all but the feet)."""
    mask = torch.ones(model.num_bodies, dtype=torch.bool)
    mask[model.contact_body_ids] = False
    return mask


def has_fallen(
    contact_force: Tensor, body_height: Tensor, heights: Tensor, fall_bodies: Tensor, progress: Tensor
) -> Tensor:
    """(N,) bool, the fall rule of facts §2.5.

    Fallen = some body of ``fall_bodies`` (B,) bool has a contact-force component above 0.1 N
    (``contact_force`` (N, B, 3) N) AND some body of ``fall_bodies`` is below its termination height
    (``body_height`` (N, B) m vs ``heights`` (B,) m), counted only after the first control step
    (``progress`` (N,) > 1).
    """
    touching = (contact_force.abs() > CONTACT_FORCE_THRESHOLD).any(-1) & fall_bodies
    low = (body_height < heights) & fall_bodies
    return touching.any(-1) & low.any(-1) & (progress > 1)


def timed_out(progress: Tensor, episode_length: int | None) -> Tensor:
    """(N,) bool: the episode reached its length (progress >= episode_length - 1, as the reference); never when
    ``episode_length`` is None (no time limit)."""
    if episode_length is None:
        return torch.zeros_like(progress, dtype=torch.bool)
    return progress >= episode_length - 1


def random_unit_quaternions(n: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
    """(n, 4) wxyz rotations uniformly distributed over SO(3) (normalised 4-D Gaussians)."""
    q = torch.randn(n, 4, generator=generator, device=device)
    return q / q.norm(dim=-1, keepdim=True).clamp_min(1e-9)
