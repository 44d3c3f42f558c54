"""Batched forward kinematics of the humanoid in torch.

Maps (root position, root rotation, 28 hinge angles) to world positions and rotations of all bodies,
with exactly MuJoCo's conventions (hinges of a body compose in declaration order), so that states set
in the simulator and states computed from motion clips agree to float precision.
"""

from __future__ import annotations

import torch

from anyskill.motion import rotations as rot
from anyskill.sim.model import HumanoidModel, load_humanoid

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

    @property
    def num_bodies(self) -> int:
        return len(self.parents)

    def local_rotations(self, dof_pos: Tensor) -> Tensor:
        """(..., D) rad -> (..., B, 4) local body rotations (root entry identity)."""
        axis = self.dof_axis.to(dof_pos)
        per_dof = rot.quat_from_axis_angle(axis.expand(*dof_pos.shape, 3), dof_pos)  # (..., D, 4)
        out = []
        ident = rot.quat_identity(dof_pos.shape[:-1], dof_pos.dtype, dof_pos.device)
        for dofs in self.body_dofs:
            q = ident
            for d in dofs:
                q = rot.quat_mul(q, per_dof[..., d, :])
            out.append(q)
        return torch.stack(out, dim=-2)

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
