"""Quality checks of motion clips: foot-sole height over the ground during stance, joint speeds.

The sole is the lowest corner of each foot's box geom (read from the MJCF, 0.05 m below the foot body
origin in the zero pose). A foot is in stance when its sole is low and its horizontal speed small.
"""

from __future__ import annotations

import functools
import itertools

import mujoco
import numpy as np
import torch

from anyskill.motion import rotations as rot
from anyskill.motion.clip import MotionClip
from anyskill.sim.model import CONTACT_BODIES, HumanoidModel

STANCE_SPEED = 0.25  # m/s, horizontal sole speed below which a low foot counts as standing
STANCE_HEIGHT = 0.08  # m, sole height above the clip's lowest sole below which a foot may count as standing


@functools.lru_cache(maxsize=4)
def foot_box_corners(model: HumanoidModel) -> dict[str, np.ndarray]:
    """Per contact body: (8, 3) m corners of its box geom in the body frame."""
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


def sole_heights(clip: MotionClip) -> np.ndarray:
    """(T, F) m: height of the lowest corner of each foot (F = 2: right, left) above z = 0."""
    pos, quat = clip.body_states()
    corners = foot_box_corners(clip.model)
    heights = []
    for name, c in corners.items():
        b = clip.model.body_index(name)
        q = torch.from_numpy(quat[:, b])[:, None].expand(-1, len(c), 4)
        world = rot.quat_rotate(q, torch.from_numpy(c)[None].expand(len(quat), -1, 3)).numpy() + pos[:, b, None]
        heights.append(world[..., 2].min(axis=1))
    return np.stack(heights, axis=1)


def sole_positions(clip: MotionClip) -> np.ndarray:
    """(T, F, 3) m: centre of each foot's sole (the box's bottom face centre), world frame."""
    pos, quat = clip.body_states()
    out = []
    for name, c in foot_box_corners(clip.model).items():
        b = clip.model.body_index(name)
        bottom = c[c[:, 2] <= c[:, 2].min() + 1e-9].mean(axis=0)
        out.append(rot.quat_rotate(torch.from_numpy(quat[:, b]), torch.from_numpy(bottom).expand(len(quat), 3)).numpy() + pos[:, b])
    return np.stack(out, axis=1)


def stance_mask(clip: MotionClip) -> np.ndarray:
    """(T, F) bool: the foot is low (within STANCE_HEIGHT of the clip's lowest sole) and nearly still."""
    h = sole_heights(clip)
    p = sole_positions(clip)
    speed = np.linalg.norm(np.gradient(p[..., :2], clip.dt, axis=0), axis=-1)
    return (h < h.min() + STANCE_HEIGHT) & (speed < STANCE_SPEED)


def ground_report(clip: MotionClip) -> dict[str, float]:
    """Sole heights (m) over stance frames (mean, 5th/95th percentile, extremes), the fraction of frames with
    a foot in stance, the lowest sole of the clip and the largest joint speed (rad/s)."""
    h = sole_heights(clip)
    stance = stance_mask(clip)
    hs = h[stance]
    dof_speed = np.abs(np.diff(clip.dof_pos, axis=0)) * clip.fps
    return {
        "stance_fraction": float(stance.any(axis=1).mean()),
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
    h = sole_heights(clip)
    stance = stance_mask(clip)
    ref = np.median(h[stance]) if stance.any() else h.min()
    shift = -float(ref)
    clip.root_pos[:, 2] += shift
    clip.meta["ground_shift_m"] = round(shift, 4)
    return shift


def dataset_report(lib) -> "pandas.DataFrame":  # noqa: F821
    """One row per clip of a MotionLibrary: summary, conversion/retargeting errors and ground contact."""
    import pandas as pd

    rows = []
    summary = lib.summary()
    for i, clip in enumerate(lib.clips):
        conv = clip.meta.get("conversion") or {}
        ret = clip.meta.get("retarget") or {}
        row = {
            **summary.iloc[i].to_dict(),
            "authored": bool(clip.meta.get("authored", False)),
            "fk_error_max_cm": 100 * conv["fk_error_clamped_max_m"] if conv else float("nan"),
            "limit_violations": len(conv.get("limit_violations_rad", {})) if conv else 0,
            "ground_shift_cm": 100 * clip.meta.get("ground_shift_m", 0.0),
            "retarget_bone_error_mean_deg": ret.get("bone_error_mean_deg", float("nan")),
        }
        row.update(ground_report(clip))
        rows.append(row)
    return pd.DataFrame(rows)


def repeated_frame_fraction(clip: MotionClip, tol: float = 1e-7) -> float:
    """Fraction of frame steps where the pose does not change at all (exact repeats)."""
    state = np.concatenate([clip.root_pos, clip.root_rot, clip.dof_pos], axis=1)
    return float((np.abs(np.diff(state, axis=0)).max(axis=1) < tol).mean())


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
            out.meta["dropped_repeated_frames"] = f"frames came in identical pairs: kept every second, {clip.fps:g} -> {out.fps:g} fps"
            return out
    return clip
