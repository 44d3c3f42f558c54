"""Observation terms shared by the simulator and the motion library (batched torch).

Both the environment (states read from physics) and the motion library (states computed from clips)
build observations with these functions, so agent and demonstration data are computed identically.

Heading frame: rotation about z by minus the yaw of the root's x axis (reference facts §1.4).
"""

from __future__ import annotations

import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.skeleton import Skeleton

Tensor = torch.Tensor


def policy_obs_size(num_bodies: int) -> int:
    """1 + 3 (B-1) + 6 B + 3 B + 3 B: 223 for 15 bodies."""
    return 1 + 3 * (num_bodies - 1) + 12 * num_bodies


def amp_obs_size(num_joints: int, num_dofs: int, num_key_bodies: int) -> int:
    """13 + 6 J + D + 3 K: 125 for 12 joints, 28 DoFs, 4 key bodies."""
    return 13 + 6 * num_joints + num_dofs + 3 * num_key_bodies


def policy_obs(body_pos: Tensor, body_rot: Tensor, body_vel: Tensor, body_ang_vel: Tensor) -> Tensor:
    """The 223-D policy observation of the LLC and the HLC (reference facts §1.4).

    body_pos (N, B, 3) m world; body_rot (N, B, 4) wxyz world; body_vel (N, B, 3) m/s world;
    body_ang_vel (N, B, 3) rad/s world. Body 0 is the root. Returns (N, 1 + 3(B-1) + 12 B + 3 B... ) =
    (N, policy_obs_size(B)): root height | root-relative body positions (bodies 1..B-1) | body
    rotations as tan-norm 6-D | linear velocities | angular velocities, all in the heading frame.
    """
    n, b = body_pos.shape[:2]
    root_pos = body_pos[:, 0]
    heading_inv = rot.heading_quat_inverse(body_rot[:, 0])  # (N, 4)
    h = heading_inv[:, None].expand(n, b, 4)
    rel = rot.quat_rotate(h[:, 1:], body_pos[:, 1:] - root_pos[:, None])
    local_rot = rot.quat_to_tan_norm(rot.quat_mul(h, body_rot))
    vel = rot.quat_rotate(h, body_vel)
    ang = rot.quat_rotate(h, body_ang_vel)
    return torch.cat(
        [root_pos[:, 2:3], rel.reshape(n, -1), local_rot.reshape(n, -1), vel.reshape(n, -1), ang.reshape(n, -1)],
        dim=-1,
    )


def amp_frame_obs(
    skeleton: Skeleton,
    root_pos: Tensor,
    root_rot: Tensor,
    root_vel: Tensor,
    root_ang_vel: Tensor,
    dof_pos: Tensor,
    dof_vel: Tensor,
    key_pos: Tensor,
    joint_rot: Tensor | None = None,
) -> Tensor:
    """One 125-D AMP / discriminator / encoder frame (reference facts §1.5), batched.

    root_pos (N, 3) m; root_rot (N, 4) wxyz; root_vel (N, 3) m/s world; root_ang_vel (N, 3) rad/s world;
    dof_pos (N, D) rad; dof_vel (N, D) rad/s (hinge angle rates); key_pos (N, K, 3) m world.
    Layout: root height (1) | root rotation tan-norm without heading (6) | root linear velocity (3) and
    angular velocity (3) in the heading frame | each joint's rotation (composition of its hinges) as
    tan-norm (6 J) | DoF velocities (D) | key-body positions relative to the root in the heading frame (3 K).
    ``joint_rot`` (N, J, 4) wxyz: the joints' rotations when already known (e.g. a simulator's parent-relative
    body rotations, much cheaper than composing hinges); default ``skeleton.joint_rotations(dof_pos)``.
    """
    n = root_pos.shape[0]
    heading_inv = rot.heading_quat_inverse(root_rot)
    root_tn = rot.quat_to_tan_norm(rot.quat_mul(heading_inv, root_rot))
    vel = rot.quat_rotate(heading_inv, root_vel)
    ang = rot.quat_rotate(heading_inv, root_ang_vel)
    if joint_rot is None:
        joint_rot = skeleton.joint_rotations(dof_pos)
    joint_tn = rot.quat_to_tan_norm(joint_rot).reshape(n, -1)
    k = key_pos.shape[1]
    key_rel = rot.quat_rotate(heading_inv[:, None].expand(n, k, 4), key_pos - root_pos[:, None])
    return torch.cat([root_pos[:, 2:3], root_tn, vel, ang, joint_tn, dof_vel, key_rel.reshape(n, -1)], dim=-1)
