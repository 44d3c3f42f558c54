"""A learned world model of the humanoid for the model-based tracker (SuperTrack-style; LLC-ROUTES.md,
"Model-based trackers").

The state is every body's pose and velocity in the world (maximal coordinates, as the simulator reports them):
:class:`BodyState`. One control step of the model maps (state, PD targets) to each body's change of linear and angular
velocity **in the character's heading frame** (so the model never sees where the character stands or faces), and
integrates them::

    v' = v + H Δv,   ω' = ω + H Δω,   p' = p + dt (v + v') / 2,   q' = exp(dt (ω + ω') / 2) q

(H: heading frame to world). Inputs are the 223-D policy observation of the state (root height, root-relative body
positions, rotations, velocities, heading frame) and the 28 PD targets, standardised by running statistics; outputs are
standardised by the running statistics of the simulator's own velocity changes. Everything is differentiable, so a
policy can be trained by backpropagating a tracking loss through a rollout of the model
(:mod:`anyskill.llc.tracking.model_based`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.obs import policy_obs, policy_obs_size
from anyskill.llc.nets import RunningNorm, mlp


@dataclass
class BodyState:
    """Bodies of N characters, world frame: pos (N, B, 3) m, rot (N, B, 4) wxyz, vel (N, B, 3) m/s, ang (N, B, 3)
    rad/s; body 0 is the root."""

    pos: Tensor
    rot: Tensor
    vel: Tensor
    ang: Tensor

    @staticmethod
    def of(backend) -> BodyState:
        """The simulated state of a :class:`~anyskill.sim.backend.Backend`."""
        return BodyState(backend.body_pos(), backend.body_rot(), backend.body_vel(), backend.body_ang_vel())

    def obs(self) -> Tensor:
        """(N, 223) the policy observation (:func:`~anyskill.humanoid.obs.policy_obs`)."""
        return policy_obs(self.pos, self.rot, self.vel, self.ang)

    def heading(self) -> Tensor:
        """(N, 4) world -> heading-frame rotation of each character."""
        return rot.heading_quat_inverse(self.rot[:, 0])


def velocity_change(before: BodyState, after: BodyState) -> Tensor:
    """(N, 6B) the change of every body's linear then angular velocity over one step, in ``before``'s heading frame."""
    n, b = before.pos.shape[:2]
    h = before.heading()[:, None].expand(n, b, 4)
    dv = rot.quat_rotate(h, after.vel - before.vel)
    dw = rot.quat_rotate(h, after.ang - before.ang)
    return torch.cat([dv.reshape(n, -1), dw.reshape(n, -1)], -1)


class WorldModel(nn.Module):
    """f(state, PD targets) -> next state (module docstring). ``units``: hidden layer widths."""

    def __init__(self, num_bodies: int, num_dofs: int, dt: float, units: tuple[int, ...] = (512, 512)):
        super().__init__()
        self.num_bodies, self.num_dofs, self.dt, self.units = num_bodies, num_dofs, dt, tuple(units)
        in_dim = policy_obs_size(num_bodies) + num_dofs
        self.in_norm = RunningNorm(in_dim)
        self.out_norm = RunningNorm(6 * num_bodies)
        self.net = mlp([in_dim, *units, 6 * num_bodies], out_scale=1e-3)

    def inputs(self, s: BodyState, targets: Tensor) -> Tensor:
        """(N, 223 + D) raw inputs."""
        return torch.cat([s.obs(), targets], -1)

    @torch.no_grad()
    def update_norms(self, s: BodyState, targets: Tensor, nxt: BodyState) -> None:
        """Running statistics of the inputs and of the simulator's velocity changes, from real transitions (N, ...)."""
        self.in_norm.update(self.inputs(s, targets))
        self.out_norm.update(velocity_change(s, nxt))

    def forward(self, s: BodyState, targets: Tensor) -> BodyState:
        """One control step from ``s`` with PD targets (N, D) rad."""
        n, b = s.pos.shape[:2]
        out = self.net(self.in_norm(self.inputs(s, targets)))
        delta = self.out_norm.mean + out * (self.out_norm.var + 1e-8).sqrt()
        to_world = rot.quat_conjugate(s.heading())[:, None].expand(n, b, 4)
        vel = s.vel + rot.quat_rotate(to_world, delta[:, :3 * b].reshape(n, b, 3))
        ang = s.ang + rot.quat_rotate(to_world, delta[:, 3 * b:].reshape(n, b, 3))
        pos = s.pos + 0.5 * self.dt * (s.vel + vel)
        q = rot.quat_normalize(rot.quat_mul(rot.quat_from_exp_map(0.5 * self.dt * (s.ang + ang)), s.rot))
        return BodyState(pos, q, vel, ang)

    def config(self) -> dict:
        return {"num_bodies": self.num_bodies, "num_dofs": self.num_dofs, "dt": self.dt, "units": self.units}


def state_error(pred: BodyState, real: BodyState, obs_scale: Tensor) -> Tensor:
    """(N,) L1 error of a predicted state: the policy observations (each feature divided by ``obs_scale`` (223,), the
    running std of real observations) and the world body positions (m)."""
    local = ((pred.obs() - real.obs()) / obs_scale).abs().mean(-1)
    world = (pred.pos - real.pos).norm(dim=-1).mean(-1)
    return local + world
