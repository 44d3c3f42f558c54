"""The pose goal of the high-level policy: no CLIP, a reward whose optimum is known and measurable (the offline
end-to-end check of the hierarchy)."""

from __future__ import annotations

import numpy as np
import torch

from anyskill.hlc.goal import HumanoidStates, frame_index
from anyskill.humanoid import rotations as rot
from anyskill.motion.clip import MotionClip

Tensor = torch.Tensor


def pose_descriptor(body_pos: Tensor, root_rot: Tensor) -> Tensor:
    """(N, B, 3) m: body positions relative to the root's ground projection, in the root's heading frame.

    Invariant to horizontal translation and to yaw; keeps heights (so a crouch or a fall changes it).
    """
    rel = body_pos.clone()
    rel[..., :2] = rel[..., :2] - body_pos[:, :1, :2]
    heading_inv = rot.heading_quat_inverse(root_rot)[:, None].expand(-1, body_pos.shape[1], -1)
    return rot.quat_rotate(heading_inv, rel)


class PoseGoal:
    """similarity = exp(-e / sigma), e = mean over the 15 bodies of the distance (m) between the frame's and the
    target's :func:`pose_descriptor`. In (0, 1], 1 exactly at the pose, smooth; sigma (m) sets the scale
    (0.25 m: standing vs. both arms raised ≈ 0.5, lying on the floor ≈ 0.05).

    The target is ``target_body_pos`` (15, 3) m with ``target_root_rot`` (4,) wxyz (default identity), or the
    frame of a :class:`MotionClip` nearest to ``time`` (:meth:`from_clip`).
    """

    def __init__(self, target_body_pos: Tensor | np.ndarray, target_root_rot: Tensor | np.ndarray | None = None,
                 sigma: float = 0.25, name: str = "pose"):
        pos = torch.as_tensor(np.asarray(target_body_pos), dtype=torch.float32)
        if pos.ndim != 2 or pos.shape[-1] != 3:
            raise ValueError(f"target_body_pos must be (B, 3) m, got shape {tuple(pos.shape)}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0 m, got {sigma}")
        quat = torch.tensor([1.0, 0.0, 0.0, 0.0]) if target_root_rot is None else torch.as_tensor(
            np.asarray(target_root_rot), dtype=torch.float32)
        self.target_body_pos = pos
        self.target = pose_descriptor(pos[None], quat[None])[0]  # (B, 3)
        self.sigma = float(sigma)
        self.name = name
        self.description = f"pose {name} | exp(-mean body error / {sigma:g} m) | no CLIP"
        self.spec = {"kind": "pose", "target_body_pos": pos.tolist(), "target_root_rot": quat.tolist(),
                     "sigma": self.sigma, "name": name}

    @classmethod
    def from_clip(cls, clip: MotionClip, time: float | None = None, sigma: float = 0.25) -> PoseGoal:
        """The pose of ``clip`` at ``time`` s (default: the middle frame)."""
        time = clip.duration / 2 if time is None else float(time)
        f = frame_index(clip, time)
        body_pos, body_rot = clip.body_states()
        goal = cls(body_pos[f], body_rot[f, 0], sigma=sigma, name=f"{clip.name}@{time:.2f}s")
        goal.spec.update({"clip": clip.name, "time": time})
        return goal

    def error(self, states: HumanoidStates) -> Tensor:
        """(N,) m: mean body-position error of the pose descriptors."""
        desc = pose_descriptor(states.body_pos.float(), states.root_rot.float())
        return (desc - self.target.to(desc.device)).norm(dim=-1).mean(dim=-1)

    def similarity(self, states: HumanoidStates) -> Tensor:
        return torch.exp(-self.error(states) / self.sigma)
