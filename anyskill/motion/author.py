"""Keyframe authoring of motion clips: key poses in, a ground-contact-consistent :class:`MotionClip` out.

A clip is a list of :class:`KeyPose` (time, hinge angles in **degrees** by DoF name, optional root
yaw/pitch/roll in degrees and root x/y offsets in m). :func:`author_clip` samples it at ``fps``:

* hinge angles: monotone piecewise-cubic Hermite interpolation (Fritsch-Carlson slopes, zero velocity at
  the first and last key, or periodic slopes for loops). It passes through every key exactly and never
  overshoots between two keys, so a clip leaves the joint limits only where a key does; such keys are
  clamped to the limits of the model and the clamping is recorded in ``meta["clamped"]``;
* root rotation: yaw, pitch and roll interpolated the same way and composed as Rz(yaw) Ry(pitch) Rx(roll)
  (for a pitch-only bow or squat this is the slerp path between the keys, with eased speed);
* root horizontal position: fixed at the key offsets, or solved so that an anchor (both feet or one foot)
  stays where it is in the first frame, which removes foot sliding in squats and kicks;
* root height: solved per frame so that the lowest corner of the two foot boxes (the MJCF geoms
  ``right_foot`` / ``left_foot``) is exactly on the ground, z = 0.

Humanoid conventions (checked by forward kinematics): the zero pose stands straight, arms hanging, facing +x,
+y to the character's left, z up. Shoulder y < 0 raises the arm forward (-90 forward, -180 overhead);
right shoulder x < 0 / left shoulder x > 0 abducts; elbows < 0 flex; hips y < 0 flex (thigh forward);
knees > 0 flex; ankle y > 0 points the toes down; abdomen y > 0 bends forward; right hip x < 0 / left hip
x > 0 spreads the legs. :func:`mirrored` maps right-side angles to the left side.

:func:`validate_clip` reports clamping, joint speed, sole height, foot sliding and balance (centre of mass
against the support polygon) of a clip.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.motion.clip import MotionClip, skeleton_for

ANCHORS = (None, "feet", "right_foot", "left_foot")
"""Root horizontal solve: none (keys only), midpoint of both soles, or one sole kept in place."""
CATEGORIES = ("idle", "gesture", "locomotion", "dance", "acrobatics", "martial")
FOOT_GEOMS = ("right_foot", "left_foot")
CONTACT_TOLERANCE = 0.01  # m, a sole corner this close to the ground counts as support


@dataclass(frozen=True)
class KeyPose:
    """One key of an authored clip.

    ``time`` s; ``joints`` hinge angles in **degrees** by DoF name (unnamed DoFs are 0);
    ``root_yaw`` / ``root_pitch`` / ``root_roll`` deg (pitch > 0 tilts the pelvis forward);
    ``root_x`` / ``root_y`` m, horizontal root offsets (added to the anchor solve if there is one).
    """

    time: float
    joints: Mapping[str, float] = field(default_factory=dict)
    root_yaw: float = 0.0
    root_pitch: float = 0.0
    root_roll: float = 0.0
    root_x: float = 0.0
    root_y: float = 0.0


def mirrored(joints: Mapping[str, float]) -> dict[str, float]:
    """Right-side hinge angles -> the same pose on the left side (deg), through the sagittal plane.

    Mirroring y -> -y keeps rotations about y and negates those about x and z; names swap ``right_`` for
    ``left_``. Entries that are not right-side DoFs are ignored.
    """
    out = {}
    for name, value in joints.items():
        if not name.startswith("right_"):
            continue
        sign = -1.0 if name.endswith(("_x", "_z")) else 1.0
        out["left_" + name[len("right_"):]] = sign * value
    return out


def monotone_cubic(times: np.ndarray, key_times: np.ndarray, values: np.ndarray, loop: bool = False) -> np.ndarray:
    """Monotone piecewise-cubic Hermite interpolation (Fritsch-Carlson).

    key_times (K,) strictly increasing s; values (K, C); times (T,) s, clipped to the key range.
    Returns (T, C). Passes through the keys; between two keys the curve stays within their values.
    End slopes are 0, or for ``loop`` (values[0] == values[-1]) taken across the seam.
    """
    key_times = np.asarray(key_times, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    h = np.diff(key_times)  # (K-1,)
    delta = np.diff(values, axis=0) / h[:, None]  # (K-1, C) secant slopes
    slopes = np.zeros_like(values)
    slopes[1:-1] = _fritsch_carlson(delta[:-1], delta[1:], h[:-1], h[1:])
    if loop and len(h) >= 2:
        seam = _fritsch_carlson(delta[-1:], delta[:1], h[-1:], h[:1])
        slopes[0] = slopes[-1] = seam[0]
    # Limit slopes so that each cubic segment stays monotone (Fritsch-Carlson condition a^2 + b^2 <= 9);
    # a flat segment gets zero slopes at both ends.
    for k in range(len(h)):
        flat = np.abs(delta[k]) <= 1e-12
        safe = np.where(flat, 1.0, delta[k])
        r = np.hypot(slopes[k] / safe, slopes[k + 1] / safe)
        scale = np.where(flat, 0.0, np.minimum(1.0, 3.0 / np.maximum(r, 1e-12)))
        slopes[k] *= scale
        slopes[k + 1] *= scale
    if loop:
        seam = np.where(np.abs(slopes[0]) < np.abs(slopes[-1]), slopes[0], slopes[-1])
        slopes[0] = slopes[-1] = seam

    t = np.clip(np.asarray(times, dtype=np.float64), key_times[0], key_times[-1])
    seg = np.clip(np.searchsorted(key_times, t, side="right") - 1, 0, len(h) - 1)
    s = ((t - key_times[seg]) / h[seg])[:, None]
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    hs = h[seg][:, None]
    return h00 * values[seg] + h10 * hs * slopes[seg] + h01 * values[seg + 1] + h11 * hs * slopes[seg + 1]


def _fritsch_carlson(d0: np.ndarray, d1: np.ndarray, h0: np.ndarray, h1: np.ndarray) -> np.ndarray:
    """Interior slope from neighbouring secants (weighted harmonic mean; 0 at local extrema)."""
    h0, h1 = h0[:, None], h1[:, None]
    w0, w1 = 2 * h1 + h0, h1 + 2 * h0
    same = (d0 * d1) > 0
    safe0 = np.where(same, d0, 1.0)
    safe1 = np.where(same, d1, 1.0)
    return np.where(same, (w0 + w1) / (w0 / safe0 + w1 / safe1), 0.0)


def author_clip(
    name: str,
    keys: Sequence[KeyPose],
    fps: float = 30.0,
    description: str = "",
    loop: bool = False,
    model: HumanoidModel | None = None,
    *,
    category: str = "gesture",
    anchor: str | None = None,
) -> MotionClip:
    """Sample key poses into a :class:`MotionClip` with the soles on the ground.

    ``keys`` at least 2, strictly increasing times (s); the clip spans ``keys[0].time`` to ``keys[-1].time``
    at ``fps`` (``round(span * fps) + 1`` frames; put key times on the frame grid to hit every key exactly).
    ``loop`` requires the last key to equal the first and makes the velocity continuous across the seam.
    ``anchor`` is one of :data:`ANCHORS`; ``category`` one of :data:`CATEGORIES`.
    """
    model = model or load_humanoid()
    _check_keys(name, keys, model, loop)
    if anchor not in ANCHORS:
        raise ValueError(f"clip {name!r}: anchor {anchor!r} is not one of {ANCHORS}")
    if category not in CATEGORIES:
        raise ValueError(f"clip {name!r}: category {category!r} is not one of {CATEGORIES}")
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"clip {name!r}: fps must be a positive number, got {fps}")

    key_times = np.array([k.time for k in keys], dtype=np.float64)
    num_frames = int(round((key_times[-1] - key_times[0]) * fps)) + 1
    times = np.minimum(key_times[0] + np.arange(num_frames) / fps, key_times[-1])

    # Hinges: interpolate the requested angles, then clamp to the joint limits.
    key_dofs = np.radians([[k.joints.get(n, 0.0) for n in model.dof_names] for k in keys])  # (K, D)
    dof_pos = monotone_cubic(times, key_times, key_dofs, loop)
    clamped = _clamp_report(key_dofs, model)
    dof_pos = np.clip(dof_pos, model.dof_lower, model.dof_upper)

    root_keys = np.array([[k.root_yaw, k.root_pitch, k.root_roll, k.root_x, k.root_y] for k in keys])
    root = monotone_cubic(times, key_times, root_keys, loop)  # (T, 5)
    root_rot = _yaw_pitch_roll_quat(np.radians(root[:, :3]))
    root_pos = np.zeros((num_frames, 3))
    root_pos[:, :2] = root[:, 3:]

    corners = sole_corners(model, root_pos, root_rot, dof_pos)  # (T, 2, 8, 3)
    if anchor is not None:
        # Cancel the drift of the anchor relative to the root, so that only the key offsets move it.
        feet = [0, 1] if anchor == "feet" else [FOOT_GEOMS.index(anchor)]
        relative = corners[:, feet, :, :2].mean(axis=(1, 2)) - root_pos[:, :2]  # (T, 2)
        shift = relative[0] - relative
        root_pos[:, :2] += shift
        corners[..., :2] += shift[:, None, None, :]
    root_pos[:, 2] = -corners[..., 2].min(axis=(1, 2))

    meta = {
        "source": "authored",
        "authored": True,
        "licence": "BSD-3-Clause (this project)",
        "description": description,
        "tool": "anyskill.motion.author",
        "category": category,
        "loop": bool(loop),
        "clamped": clamped,
    }
    return MotionClip(
        name=name, fps=float(fps), root_pos=root_pos, root_rot=root_rot, dof_pos=dof_pos, meta=meta, model=model
    )


def _check_keys(name: str, keys: Sequence[KeyPose], model: HumanoidModel, loop: bool) -> None:
    if len(keys) < 2:
        raise ValueError(f"clip {name!r}: needs at least 2 key poses, got {len(keys)}")
    times = [k.time for k in keys]
    if not all(math.isfinite(t) for t in times):
        raise ValueError(f"clip {name!r}: key times must be finite, got {times}")
    for i in range(1, len(times)):
        if times[i] <= times[i - 1]:
            raise ValueError(
                f"clip {name!r}: key times must be strictly increasing, but key {i} is at {times[i]} s "
                f"after key {i - 1} at {times[i - 1]} s; sort the keys by time"
            )
    valid = set(model.dof_names)
    for i, k in enumerate(keys):
        unknown = sorted(set(k.joints) - valid)
        if unknown:
            raise ValueError(
                f"clip {name!r}: key {i} (t={k.time} s) names unknown DoF(s) {unknown}; "
                f"valid DoF names are {list(model.dof_names)}"
            )
        bad = [n for n, v in k.joints.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"clip {name!r}: key {i} (t={k.time} s) has non-finite angles for {bad}")
    if loop:
        first, last = keys[0], keys[-1]
        same_joints = all(
            math.isclose(first.joints.get(n, 0.0), last.joints.get(n, 0.0), abs_tol=1e-9) for n in model.dof_names
        )
        root_fields = ("root_yaw", "root_pitch", "root_roll", "root_x", "root_y")
        same_root = all(math.isclose(getattr(first, f), getattr(last, f), abs_tol=1e-9) for f in root_fields)
        if not (same_joints and same_root):
            raise ValueError(f"clip {name!r}: loop=True needs the last key pose to equal the first; add a closing key")


def _clamp_report(key_dofs: np.ndarray, model: HumanoidModel) -> dict[str, float]:
    """{DoF name: largest excess over its limit among the keys, deg} for keys outside the limits."""
    excess = np.maximum(key_dofs - model.dof_upper, model.dof_lower - key_dofs).max(axis=0)
    return {n: round(float(np.degrees(e)), 4) for n, e in zip(model.dof_names, excess, strict=True) if e > 1e-9}


def _yaw_pitch_roll_quat(ypr: np.ndarray) -> np.ndarray:
    """(T, 3) rad yaw, pitch, roll -> (T, 4) wxyz of Rz(yaw) Ry(pitch) Rx(roll)."""
    a = torch.from_numpy(ypr)
    axes = torch.eye(3, dtype=torch.float64)
    qz = rot.quat_from_axis_angle(axes[2].expand(len(a), 3), a[:, 0])
    qy = rot.quat_from_axis_angle(axes[1].expand(len(a), 3), a[:, 1])
    qx = rot.quat_from_axis_angle(axes[0].expand(len(a), 3), a[:, 2])
    return rot.quat_mul(rot.quat_mul(qz, qy), qx).numpy()


@functools.lru_cache(maxsize=8)
def _mj_params(model: HumanoidModel) -> dict[str, np.ndarray]:
    """Foot-box geometry and body mass properties from the MuJoCo model, in HumanoidModel body order."""
    mj = model.mj_model()
    boxes = []
    for g in FOOT_GEOMS:
        gid = mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_GEOM, g)
        if gid < 0 or mj.geom_type[gid] != mujoco.mjtGeom.mjGEOM_BOX:
            raise ValueError(f"{model.xml_path}: needs a box geom named {g!r} for the sole height solve")
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        local = signs * mj.geom_size[gid]
        quat = torch.from_numpy(np.array(mj.geom_quat[gid], dtype=np.float64)).expand(8, 4)
        local = rot.quat_rotate(quat, torch.from_numpy(local)).numpy() + mj.geom_pos[gid]
        body = model.body_index(mujoco.mj_id2name(mj, mujoco.mjtObj.mjOBJ_BODY, int(mj.geom_bodyid[gid])))
        boxes.append((body, local))
    ids = [mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_BODY, n) for n in model.body_names]
    return {
        "foot_bodies": np.array([b for b, _ in boxes]),
        "foot_corners": np.stack([c for _, c in boxes]),  # (2, 8, 3) m, foot frame
        "body_mass": np.array([mj.body_mass[i] for i in ids]),  # (B,) kg
        "body_com": np.array([mj.body_ipos[i] for i in ids]),  # (B, 3) m, body frame
    }


def sole_corners(model: HumanoidModel, root_pos: np.ndarray, root_rot: np.ndarray, dof_pos: np.ndarray) -> np.ndarray:
    """World positions (T, 2, 8, 3) m of the corners of the right and left foot boxes."""
    params = _mj_params(model)
    pos, rots = skeleton_for(model).forward_kinematics(
        torch.from_numpy(root_pos), torch.from_numpy(root_rot), torch.from_numpy(dof_pos)
    )
    feet = params["foot_bodies"]
    fpos, frot = pos[:, feet], rots[:, feet]  # (T, 2, 3), (T, 2, 4)
    local = torch.from_numpy(params["foot_corners"]).expand(len(root_pos), 2, 8, 3)
    world = fpos[:, :, None] + rot.quat_rotate(frot[:, :, None].expand(-1, -1, 8, -1), local)
    return world.numpy()


def centre_of_mass(clip: MotionClip) -> np.ndarray:
    """(T, 3) m: whole-body centre of mass, world frame, from FK and the MuJoCo body masses."""
    params = _mj_params(clip.model)
    pos, rots = clip.body_states()
    com_local = torch.from_numpy(params["body_com"]).expand(pos.shape)
    com = pos + rot.quat_rotate(torch.from_numpy(rots), com_local).numpy()  # (T, B, 3)
    mass = params["body_mass"]
    return (com * mass[None, :, None]).sum(axis=1) / mass.sum()


@dataclass
class ClipReport:
    """Validation numbers of one clip (angles rad, lengths m, speeds per s)."""

    name: str
    num_frames: int
    duration: float  # s
    clamped: dict[str, float]  # deg beyond the limit requested by keys, per DoF
    limit_excess: float  # rad, largest excess of any frame over the joint limits (0 when within)
    max_joint_speed: float  # rad/s
    fastest_dof: str
    sole_min: float  # m, lowest sole point over frames (0 by construction)
    sole_max: float  # m, highest per-frame lowest sole point
    max_foot_slide: float  # m/s, horizontal speed of a sole corner while it touches the ground
    airborne_frames: int  # frames without any sole corner within CONTACT_TOLERANCE of the ground
    # Balance over the frames with ground contact (NaN if there are none):
    com_to_support_centre_max: float  # m, horizontal CoM distance to the centre of the support contacts
    com_to_support_centre_mean: float  # m
    com_outside_support_max: float  # m, horizontal distance of the CoM outside the support polygon (0: inside)
    com_inside_fraction: float  # share of frames with the CoM above the support polygon

    def problems(self, max_speed: float = 15.0, sole_tolerance: float = 0.01) -> list[str]:
        """Human-readable failures of the hard checks (limits, speed, ground contact); empty when fine."""
        out = []
        if self.limit_excess > 1e-9:
            out.append(f"{self.name}: leaves the joint limits by {self.limit_excess:.4f} rad")
        if self.max_joint_speed >= max_speed:
            out.append(f"{self.name}: {self.fastest_dof} moves at {self.max_joint_speed:.1f} rad/s (>= {max_speed})")
        if max(abs(self.sole_min), abs(self.sole_max)) > sole_tolerance:
            out.append(f"{self.name}: lowest sole point off the ground ({self.sole_min:.4f}..{self.sole_max:.4f} m)")
        return out


def validate_clip(clip: MotionClip) -> ClipReport:
    """Measure a clip: joint limits, joint speed, sole height, foot sliding and balance."""
    m = clip.model
    excess = np.maximum(clip.dof_pos - m.dof_upper, m.dof_lower - clip.dof_pos).max()
    speed = np.abs(np.diff(clip.dof_pos, axis=0)) * clip.fps  # (T-1, D)
    fastest = int(np.argmax(speed.max(axis=0)))
    corners = sole_corners(m, clip.root_pos, clip.root_rot, clip.dof_pos)  # (T, 2, 8, 3)
    lowest = corners[..., 2].min(axis=(1, 2))

    # Sliding: horizontal speed of sole corners that touch the ground in two consecutive frames.
    slide = np.linalg.norm(np.diff(corners[..., :2], axis=0), axis=-1) * clip.fps  # (T-1, 2, 8)
    grounded = (corners[1:, ..., 2] < CONTACT_TOLERANCE) & (corners[:-1, ..., 2] < CONTACT_TOLERANCE)
    max_slide = float((slide * grounded).max())

    # Balance, over the frames with ground contact (airborne frames have no support polygon).
    com_xy = centre_of_mass(clip)[:, :2]
    to_centre, outside = [], []
    for t in range(clip.num_frames):
        support = corners[t][corners[t, ..., 2] < CONTACT_TOLERANCE][:, :2]
        if len(support):
            to_centre.append(float(np.linalg.norm(com_xy[t] - support.mean(axis=0))))
            outside.append(_distance_outside(com_xy[t], _convex_hull(support)))
    supported = len(outside) > 0
    outside_arr = np.array(outside)
    return ClipReport(
        name=clip.name,
        num_frames=clip.num_frames,
        duration=clip.duration,
        clamped=dict(clip.meta.get("clamped", {})),
        limit_excess=float(max(excess, 0.0)),
        max_joint_speed=float(speed.max()),
        fastest_dof=m.dof_names[fastest],
        sole_min=float(lowest.min()),
        sole_max=float(lowest.max()),
        max_foot_slide=max_slide,
        airborne_frames=clip.num_frames - len(outside),
        com_to_support_centre_max=float(max(to_centre)) if supported else math.nan,
        com_to_support_centre_mean=float(np.mean(to_centre)) if supported else math.nan,
        com_outside_support_max=float(outside_arr.max()) if supported else math.nan,
        com_inside_fraction=float(np.mean(outside_arr <= 0.0)) if supported else math.nan,
    )


def format_reports(reports: Sequence[ClipReport]) -> str:
    """A plain-text table of validation reports, one clip per line."""
    head = (
        f"{'clip':<16} {'frames':>6} {'dur s':>6} {'clamped':>8} {'max w rad/s':>11} {'fastest DoF':<18} "
        f"{'sole min..max mm':>17} {'slide m/s':>9} {'CoM-ctr max/mean m':>18} {'CoM out m':>9} {'inside':>6}"
    )
    lines = [head]
    for r in reports:
        lines.append(
            f"{r.name:<16} {r.num_frames:>6} {r.duration:>6.2f} {len(r.clamped):>8} {r.max_joint_speed:>11.2f} "
            f"{r.fastest_dof:<18} {1e3 * r.sole_min:>8.2f}..{1e3 * r.sole_max:<7.2f} {r.max_foot_slide:>9.3f} "
            f"{r.com_to_support_centre_max:>9.3f}/{r.com_to_support_centre_mean:<8.3f} "
            f"{r.com_outside_support_max:>9.3f} {r.com_inside_fraction:>6.2f}"
        )
    return "\n".join(lines)


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """(N, 2) -> (H, 2) counter-clockwise convex hull (Andrew's monotone chain); H < 3 if degenerate."""
    pts = np.unique(np.round(points, 9), axis=0)
    if len(pts) < 3:
        return pts

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[np.ndarray] = []
    upper: list[np.ndarray] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in pts[::-1]:
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


def _distance_outside(p: np.ndarray, hull: np.ndarray) -> float:
    """Distance (m) from a point to a CCW convex polygon, 0 if inside; a degenerate hull is a point/segment set."""
    edges = [(hull[i], hull[(i + 1) % len(hull)]) for i in range(len(hull))]
    if len(hull) >= 3:
        inside = all((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) >= 0 for a, b in edges)
        if inside:
            return 0.0
    dists = []
    for a, b in edges:
        ab = b - a
        s = np.clip(np.dot(p - a, ab) / max(np.dot(ab, ab), 1e-18), 0.0, 1.0)
        dists.append(float(np.linalg.norm(p - (a + s * ab))))
    return min(dists)
