"""Rotation utilities on batched torch tensors.

One convention for the whole library: quaternions are **(w, x, y, z)**, unit norm, as in MuJoCo.
Files that store (x, y, z, w) (poselib / Isaac Gym) are converted at the import boundary with
:func:`xyzw_to_wxyz`. All functions broadcast over leading dimensions ``(...)``.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def xyzw_to_wxyz(q: Tensor) -> Tensor:
    """(..., 4) xyzw -> (..., 4) wxyz."""
    return torch.cat([q[..., 3:4], q[..., 0:3]], dim=-1)


def wxyz_to_xyzw(q: Tensor) -> Tensor:
    """(..., 4) wxyz -> (..., 4) xyzw."""
    return torch.cat([q[..., 1:4], q[..., 0:1]], dim=-1)


def quat_identity(shape: tuple[int, ...] = (), dtype=torch.float32, device=None) -> Tensor:
    q = torch.zeros(*shape, 4, dtype=dtype, device=device)
    q[..., 0] = 1.0
    return q


def quat_normalize(q: Tensor, eps: float = 1e-9) -> Tensor:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_conjugate(q: Tensor) -> Tensor:
    return torch.cat([q[..., 0:1], -q[..., 1:4]], dim=-1)


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a*b (apply b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_rotate(q: Tensor, v: Tensor) -> Tensor:
    """Rotate vectors v (..., 3) by unit quaternions q (..., 4)."""
    w = q[..., 0:1]
    u = q[..., 1:4]
    t = 2.0 * torch.cross(u, v, dim=-1)
    return v + w * t + torch.cross(u, t, dim=-1)


def quat_rotate_inverse(q: Tensor, v: Tensor) -> Tensor:
    return quat_rotate(quat_conjugate(q), v)


def quat_from_axis_angle(axis: Tensor, angle: Tensor) -> Tensor:
    """axis (..., 3) unit, angle (...) rad -> (..., 4)."""
    half = 0.5 * angle
    return torch.cat([torch.cos(half)[..., None], axis * torch.sin(half)[..., None]], dim=-1)


def quat_from_exp_map(v: Tensor, eps: float = 1e-9) -> Tensor:
    """Exponential map (..., 3) (axis * angle) -> quaternion (..., 4)."""
    angle = v.norm(dim=-1)
    axis = v / angle.clamp_min(eps)[..., None]
    q = quat_from_axis_angle(axis, angle)
    return torch.where((angle < eps)[..., None], quat_identity(v.shape[:-1], v.dtype, v.device), q)


def quat_to_axis_angle(q: Tensor, eps: float = 1e-9) -> tuple[Tensor, Tensor]:
    """Shortest-arc axis (..., 3) and angle (...) in [0, pi]."""
    q = torch.where(q[..., 0:1] < 0, -q, q)
    s = q[..., 1:4].norm(dim=-1)
    angle = 2.0 * torch.atan2(s, q[..., 0])
    axis = q[..., 1:4] / s.clamp_min(eps)[..., None]
    z_axis = torch.tensor([0.0, 0.0, 1.0], dtype=q.dtype, device=q.device)
    axis = torch.where((s < eps)[..., None], z_axis, axis)
    return axis, angle


def quat_to_exp_map(q: Tensor) -> Tensor:
    axis, angle = quat_to_axis_angle(q)
    return axis * angle[..., None]


def quat_to_matrix(q: Tensor) -> Tensor:
    """(..., 4) -> (..., 3, 3)."""
    w, x, y, z = q.unbind(-1)
    m = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return m.reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: Tensor) -> Tensor:
    """(..., 3, 3) rotation matrices -> (..., 4) quaternions with w >= 0 (numerically robust)."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    d21, d02, d10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    cands = torch.stack(
        [
            torch.stack([1 + trace, d21, d02, d10], -1),
            torch.stack([d21, 1 + m00 - m11 - m22, s01, s02], -1),
            torch.stack([d02, s01, 1 - m00 + m11 - m22, s12], -1),
            torch.stack([d10, s02, s12, 1 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )
    diag = torch.stack([trace, m00, m11, m22], dim=-1)
    best = diag.argmax(dim=-1)
    q = torch.gather(cands, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = quat_normalize(q)
    return torch.where(q[..., 0:1] < 0, -q, q)


def quat_slerp(q0: Tensor, q1: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation; t (...) in [0, 1] broadcast against q (..., 4). Shortest path."""
    t = t[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    small = sin_theta < 1e-6
    w0 = torch.where(small, 1.0 - t, torch.sin((1.0 - t) * theta) / sin_theta.clamp_min(1e-12))
    w1 = torch.where(small, t, torch.sin(t * theta) / sin_theta.clamp_min(1e-12))
    return quat_normalize(w0 * q0 + w1 * q1)


def quat_from_euler_xyz(angles: Tensor) -> Tensor:
    """Intrinsic XYZ Euler angles (..., 3) rad -> q = Rx(a) Ry(b) Rz(c).

    This is the rotation of three MuJoCo hinges about x, y, z declared in that order.
    """
    ex = torch.zeros_like(angles)
    ex[..., 0] = 1.0
    ey = torch.zeros_like(angles)
    ey[..., 1] = 1.0
    ez = torch.zeros_like(angles)
    ez[..., 2] = 1.0
    qx = quat_from_axis_angle(ex, angles[..., 0])
    qy = quat_from_axis_angle(ey, angles[..., 1])
    qz = quat_from_axis_angle(ez, angles[..., 2])
    return quat_mul(quat_mul(qx, qy), qz)


def euler_xyz_candidates(q: Tensor) -> Tensor:
    """Both intrinsic-XYZ decompositions of q: (..., 2, 3) rad.

    Rx(a)Ry(b)Rz(c) has R02 = sin b, R12 = -sin a cos b, R22 = cos a cos b, R01 = -cos b sin c,
    R00 = cos b cos c. The second branch is (a + pi, pi - b, c + pi). Near b = +-pi/2 (gimbal lock)
    only a + c (or a - c) is defined; c is then set from the previous-frame choice by the caller.
    """
    m = quat_to_matrix(q)
    sb = m[..., 0, 2].clamp(-1.0, 1.0)
    b = torch.asin(sb)
    a = torch.atan2(-m[..., 1, 2], m[..., 2, 2])
    c = torch.atan2(-m[..., 0, 1], m[..., 0, 0])
    # Gimbal lock: cos b ~ 0, a and c couple. Put everything in a, c = 0.
    lock = torch.cos(b).abs() < 1e-6
    a_lock = torch.atan2(m[..., 2, 1], m[..., 1, 1])
    a = torch.where(lock, a_lock, a)
    c = torch.where(lock, torch.zeros_like(c), c)
    first = torch.stack([a, b, c], dim=-1)
    second = torch.stack([a + math.pi, math.pi - b, c + math.pi], dim=-1)
    return wrap_angle(torch.stack([first, second], dim=-2))


def wrap_angle(x: Tensor) -> Tensor:
    """Wrap angles to (-pi, pi]."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def twist_angle(q: Tensor, axis: Tensor) -> Tensor:
    """Angle (...) rad of the twist of q about a unit axis (3,) (swing-twist decomposition)."""
    proj = (q[..., 1:4] * axis).sum(-1)
    return wrap_angle(2.0 * torch.atan2(proj, q[..., 0]))


def heading_angle(q: Tensor) -> Tensor:
    """Yaw (...) of the body x-axis projected on the ground plane (z up)."""
    x = torch.zeros(*q.shape[:-1], 3, dtype=q.dtype, device=q.device)
    x[..., 0] = 1.0
    d = quat_rotate(q, x)
    return torch.atan2(d[..., 1], d[..., 0])


def heading_quat_inverse(q: Tensor) -> Tensor:
    """Rotation about z by minus the heading of q: world -> heading frame."""
    yaw = heading_angle(q)
    z = torch.zeros(*q.shape[:-1], 3, dtype=q.dtype, device=q.device)
    z[..., 2] = 1.0
    return quat_from_axis_angle(z, -yaw)


def quat_to_tan_norm(q: Tensor) -> Tensor:
    """6-D rotation representation [R x_hat, R z_hat] (..., 6): the first and third columns of R."""
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),
            2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )


def quat_angle_between(a: Tensor, b: Tensor) -> Tensor:
    """Geodesic angle (...) rad between two rotations."""
    d = (a * b).sum(-1).abs().clamp(max=1.0)
    return 2.0 * torch.acos(d)
