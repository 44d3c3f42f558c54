"""Batched forward kinematics of the humanoid in torch.

Maps (root position, root rotation, 28 hinge angles) to world positions and rotations of all bodies,
with exactly MuJoCo's conventions (hinges of a body compose in declaration order), so that states set
in the simulator and states computed from motion clips agree to float precision.
"""

from __future__ import annotations

import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel, load_humanoid

Tensor = torch.Tensor


class Skeleton:
    """Tree of the humanoid's bodies with batched FK. Shapes: B bodies, D DoFs, leading dims ``...``."""

    def __init__(self, model: HumanoidModel | None = None):
        self.model = model or load_humanoid()
        m = self.model
        self.parents = [int(p) for p in m.parents]
        self.offsets = torch.as_tensor(m.offsets, dtype=torch.float64)  # (B, 3) m
        self.offsets[0] = 0.0  # the root's offset is its spawn position, not part of FK
        self.dof_axis = torch.as_tensor(m.dof_axis, dtype=torch.float64)  # (D, 3)
        self.body_dofs: list[list[int]] = [[] for _ in range(m.num_bodies)]
        for d, b in enumerate(m.dof_body):
            self.body_dofs[int(b)].append(d)
        eye = np.eye(3)
        xyz = [b for b, dofs in enumerate(self.body_dofs) if len(dofs) == 3 and np.allclose(m.dof_axis[dofs], eye)]
        self._xyz_bodies = xyz
        self._xyz_dofs = [d for b in xyz for d in self.body_dofs[b]]
        self._other_bodies = [(b, dofs) for b, dofs in enumerate(self.body_dofs) if dofs and b not in xyz]

    @property
    def num_bodies(self) -> int:
        return len(self.parents)

    def local_rotations(self, dof_pos: Tensor) -> Tensor:
        """(..., D) rad -> (..., B, 4) local body rotations (root entry identity).

        Bodies with three hinges about x, y, z use the closed form of Rx(a) Ry(b) Rz(c) from half-angles, all at
        once; other bodies compose their hinges in declaration order.
        """
        lead = dof_pos.shape[:-1]
        per_body: list[Tensor] = [rot.quat_identity(lead, dof_pos.dtype, dof_pos.device)] * self.num_bodies
        if self._xyz_bodies:
            half = 0.5 * dof_pos[..., self._xyz_dofs].unflatten(-1, (-1, 3))  # (..., J3, 3)
            cx, cy, cz = torch.cos(half).unbind(-1)
            sx, sy, sz = torch.sin(half).unbind(-1)
            a, b, c, d = cx * cy, sx * cy, cx * sy, sx * sy  # qx * qy
            q = torch.stack([a * cz - d * sz, b * cz + c * sz, c * cz - b * sz, a * sz + d * cz], dim=-1)
            for k, body in enumerate(self._xyz_bodies):
                per_body[body] = q[..., k, :]
        axis = self.dof_axis.to(dof_pos)
        for body, dofs in self._other_bodies:
            q = per_body[body]
            for d_ in dofs:
                q = rot.quat_mul(q, rot.quat_from_axis_angle(axis[d_].expand(*lead, 3), dof_pos[..., d_]))
            per_body[body] = q
        return torch.stack(per_body, dim=-2)

    def forward_kinematics(self, root_pos: Tensor, root_rot: Tensor, dof_pos: Tensor) -> tuple[Tensor, Tensor]:
        """World body positions (..., B, 3) m and rotations (..., B, 4) wxyz.

        root_pos (..., 3) m, root_rot (..., 4) wxyz, dof_pos (..., D) rad.
        """
        local = self.local_rotations(dof_pos)
        return self.forward_kinematics_local(root_pos, root_rot, local)

    def forward_kinematics_local(self, root_pos: Tensor, root_rot: Tensor, local_rot: Tensor) -> tuple[Tensor, Tensor]:
        """FK from local body rotations (..., B, 4) (the root entry is replaced by root_rot)."""
        offsets = self.offsets.to(root_pos)
        pos: list[Tensor] = []
        rots: list[Tensor] = []
        for b, p in enumerate(self.parents):
            if p < 0:
                pos.append(root_pos)
                rots.append(root_rot)
            else:
                pos.append(pos[p] + rot.quat_rotate(rots[p], offsets[b].expand_as(root_pos)))
                rots.append(rot.quat_mul(rots[p], local_rot[..., b, :]))
        return torch.stack(pos, dim=-2), torch.stack(rots, dim=-2)

    def joint_rotations(self, dof_pos: Tensor) -> Tensor:
        """(..., D) -> (..., J, 4): rotation of each joint (bodies with DoFs), J = 12 for the humanoid."""
        local = self.local_rotations(dof_pos)
        ids = [j.body for j in self.model.joints]
        return local[..., ids, :]
