"""Quality checks and fixes of motion clips: foot soles on the ground, stance, joint speeds, repeated frames.

The sole of a foot is its box geom (read from the MJCF; its lowest corner is 0.05 m below the foot body origin in
the zero pose). A foot is in **stance** when its sole is low (within ``STANCE_HEIGHT`` of the clip's lowest sole)
and its sole centre moves slower than ``STANCE_SPEED`` horizontally: :func:`foot_soles` and :func:`stance` are the
one definition used by the ground alignment here, by the BVH retargeter (:mod:`anyskill.motion.retarget`) and by
its report.
"""

from __future__ import annotations

import functools
import itertools

import mujoco
import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import CONTACT_BODIES, HumanoidModel
from anyskill.motion.clip import MotionClip, skeleton_for

STANCE_SPEED = 0.25  # m/s, horizontal sole speed below which a low foot counts as standing
STANCE_HEIGHT = 0.08  # m, sole height above the clip's lowest sole below which a foot may count as standing
SINK = 0.02  # m, soles lower than this below the ground get their ankle pitch corrected (lift_sunken_feet)


@functools.lru_cache(maxsize=4)
def foot_box_corners(model: HumanoidModel) -> dict[str, np.ndarray]:
    """Per contact body (``CONTACT_BODIES``): (8, 3) m corners of its box geom in the body frame."""
    m = model.mj_model()
    out = {}
    for name in CONTACT_BODIES:
        body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)
        boxes = [g for g in range(m.ngeom) if m.geom_bodyid[g] == body and m.geom_type[g] == mujoco.mjtGeom.mjGEOM_BOX]
        if not boxes:
            raise ValueError(f"{model.xml_path}: body {name!r} has no box geom to serve as a sole")
        g = boxes[0]
        signs = np.array(list(itertools.product((-1, 1), repeat=3)), dtype=np.float64)
        local = signs * m.geom_size[g]
        rmat = np.zeros(9)
        mujoco.mju_quat2Mat(rmat, m.geom_quat[g])
        out[name] = local @ rmat.reshape(3, 3).T + m.geom_pos[g]
    return out


def sole_height(model: HumanoidModel, foot: str, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """(N,) m: height of the lowest corner of ``foot``'s sole for foot body positions (N, 3) m and rotations
    (N, 4) wxyz."""
    corners = foot_box_corners(model)[foot]
    q = torch.from_numpy(np.ascontiguousarray(quat))[:, None].expand(-1, len(corners), 4)
    lowest = rot.quat_rotate(q, torch.from_numpy(corners)[None].expand(len(quat), -1, 3))[..., 2].numpy().min(-1)
    return pos[:, 2] + lowest


def foot_soles(model: HumanoidModel, body_pos: np.ndarray, body_rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest sole height (T, F) m and sole centre (T, F, 3) m (the box's bottom face centre, world frame) of each
    foot (F = 2, ``CONTACT_BODIES`` order) for body states ``body_pos`` (T, B, 3) m, ``body_rot`` (T, B, 4) wxyz."""
    heights, centres = [], []
    for name, c in foot_box_corners(model).items():
        b = model.body_index(name)
        heights.append(sole_height(model, name, body_pos[:, b], body_rot[:, b]))
        bottom = c[c[:, 2] <= c[:, 2].min() + 1e-9].mean(axis=0)
        q = torch.from_numpy(np.ascontiguousarray(body_rot[:, b]))
        centres.append(rot.quat_rotate(q, torch.from_numpy(bottom).expand(len(q), 3)).numpy() + body_pos[:, b])
    return np.stack(heights, axis=1), np.stack(centres, axis=1)


def stance(heights: np.ndarray, centres: np.ndarray, fps: float) -> np.ndarray:
    """(T, F) bool: the foot is in stance: its sole (``heights`` (T, F) m from :func:`foot_soles`) within
    ``STANCE_HEIGHT`` of the lowest sole of the sequence, and its sole centre (``centres`` (T, F, 3) m) slower than
    ``STANCE_SPEED`` horizontally (frames 1 / ``fps`` s apart)."""
    speed = np.linalg.norm(np.gradient(centres[..., :2], 1.0 / fps, axis=0), axis=-1)
    return (heights < heights.min() + STANCE_HEIGHT) & (speed < STANCE_SPEED)


def clip_stance(clip: MotionClip) -> tuple[np.ndarray, np.ndarray]:
    """The clip's lowest sole heights (T, F) m and stance mask (T, F) bool (:func:`foot_soles`, :func:`stance`)."""
    heights, centres = foot_soles(clip.model, *clip.body_states())
    return heights, stance(heights, centres, clip.fps)


def ground_report(clip: MotionClip) -> dict[str, float]:
    """Sole heights (m) over stance frames (mean, 5th/95th percentile, extremes), the fraction of frames with
    a foot in stance, the lowest sole of the clip and the largest joint speed (rad/s)."""
    h, in_stance = clip_stance(clip)
    hs = h[in_stance]
    dof_speed = np.abs(np.diff(clip.dof_pos, axis=0)) * clip.fps
    return {
        "stance_fraction": float(in_stance.any(axis=1).mean()),
        "stance_sole_mean_m": float(hs.mean()) if hs.size else float("nan"),
        "stance_sole_p5_m": float(np.percentile(hs, 5)) if hs.size else float("nan"),
        "stance_sole_p95_m": float(np.percentile(hs, 95)) if hs.size else float("nan"),
        "stance_sole_min_m": float(hs.min()) if hs.size else float("nan"),
        "stance_sole_max_m": float(hs.max()) if hs.size else float("nan"),
        "lowest_sole_m": float(h.min()),
        "max_joint_speed_rad_s": float(dof_speed.max()),
    }


def ground_align(clip: MotionClip) -> float:
    """Shift the clip vertically (in place) so its stance soles sit on z = 0 on median; returns the shift, m.

    Motion files made for other simulators often have the feet a few centimetres in or above the floor
    (e.g. clips lowered so the lowest body *origin* touches z = 0, or a different foot geometry).
    """
    h, in_stance = clip_stance(clip)
    ref = np.median(h[in_stance]) if in_stance.any() else h.min()
    shift = -float(ref)
    clip.root_pos[:, 2] += shift
    clip.meta["ground_shift_m"] = round(shift, 4)
    return shift


def lift_sunken_feet(model: HumanoidModel, root_pos: np.ndarray, root_rot: np.ndarray, dof: np.ndarray,
                      fps: float) -> tuple[np.ndarray, dict]:
    """Where a foot's sole sinks more than ``SINK`` below the ground (tiptoes, gliding steps, or sources
    whose toes pass through their floor), pitch its ankle (y hinge) by the least angle (0.5 deg steps, within
    the limits) that brings the sole up to -``SINK``. ``root_pos`` (T, 3) m, ``root_rot`` (T, 4) wxyz, ``dof`` (T, D)
    rad at ``fps``. Returns new hinge angles and a summary."""
    body_pos, body_rot = skeleton_for(model).forward_kinematics(
        torch.from_numpy(root_pos), torch.from_numpy(root_rot), torch.from_numpy(dof))
    pos, rq = body_pos.numpy(), body_rot.numpy()
    heights = foot_soles(model, pos, rq)[0]
    dof = dof.copy()
    steps = np.radians(np.arange(0.5, 60.01, 0.5))
    n_fixed, largest = 0, 0.0
    for f, name in enumerate(foot_box_corners(model)):
        frames = np.nonzero(heights[:, f] < -SINK)[0]
        if not len(frames):
            continue
        b = model.body_index(name)
        idx = list(next(j for j in model.joints if j.body == b).dofs)  # x, y, z hinges of the ankle
        parent_rot = torch.from_numpy(rq[frames, model.parents[b]])[:, None].expand(-1, len(steps), 4)
        best = np.zeros(len(frames))
        for sign in (-1.0, 1.0):  # raise the toes, or the heel
            angles = np.repeat(dof[frames][:, None, idx], len(steps), 1)  # (F, S, 3)
            angles[..., 1] = np.clip(angles[..., 1] + sign * steps, model.dof_lower[idx[1]], model.dof_upper[idx[1]])
            q = rot.quat_mul(parent_rot, rot.quat_from_euler_xyz(torch.from_numpy(angles)))
            h = sole_height(model, name, np.repeat(pos[frames, b], len(steps), 0), q.reshape(-1, 4).numpy())
            ok = h.reshape(len(frames), -1) >= -SINK
            for i in np.nonzero(ok.any(1))[0]:
                k = int(ok[i].argmax())
                if best[i] == 0 or steps[k] < abs(best[i]):
                    best[i] = sign * steps[k]
        changed = best != 0
        rows = frames[changed]
        dof[rows, idx[1]] = np.clip(dof[rows, idx[1]] + best[changed], model.dof_lower[idx[1]], model.dof_upper[idx[1]])
        n_fixed += int(changed.sum())
        largest = max(largest, float(np.degrees(np.abs(best).max())))
    return dof, {"sunken_foot_frames_fixed": n_fixed, "sunken_foot_pitch_change_max_deg": round(largest, 2)}


def drop_repeated_frames(clip: MotionClip, tol: float = 1e-7) -> MotionClip:
    """Undo frame doubling: a clip whose frames come in identical pairs (data at f/2 fps stored at f fps) becomes
    every second frame at f/2 fps. Finite-difference velocities of doubled clips alternate between 0 and twice the
    true speed, which corrupts AMP observations. Clips without the pattern are returned unchanged."""
    state = np.concatenate([clip.root_pos, clip.root_rot, clip.dof_pos], axis=1)
    same = np.abs(np.diff(state, axis=0)).max(axis=1) < tol  # same[i]: frame i+1 repeats frame i
    for phase in (0, 1):
        pairs = same[phase::2]
        if len(pairs) >= 4 and pairs.mean() > 0.9 and not same[1 - phase :: 2].any():
            keep = np.arange(phase, clip.num_frames, 2)
            out = MotionClip(clip.name, clip.fps / 2, clip.root_pos[keep], clip.root_rot[keep], clip.dof_pos[keep],
                             meta=dict(clip.meta), model=clip.model)
            out.meta["dropped_repeated_frames"] = (f"frames came in identical pairs: kept every second, "
                                                   f"{clip.fps:g} -> {out.fps:g} fps")
            return out
    return clip
