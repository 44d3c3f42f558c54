"""Retargeting a BVH recording (:mod:`anyskill.motion.bvh`) to the humanoid, and the report of how well it worked.

:func:`load_bvh` retargets by matching *bone directions*, not joint angles, so the source's rest pose, bone lengths
and Euler conventions never reach the clip:

1. units: the scale maps the source leg (hip -> knee -> ankle, from the skeleton's offsets) onto the
   humanoid's leg; axes: the source's up axis (rest hips -> neck, snapped to a coordinate axis) and its
   left (rest right hip -> left hip) become +z and +y, so a rest pose faces +x as the humanoid does;
2. per frame, the global orientation of each humanoid body is the rotation that maps its bone
   (e.g. thigh: hip -> knee) onto the source's bone, with a second direction fixing the twist: the
   bending plane of knee/elbow (our knees and elbows are single hinges), the hip and shoulder lines
   for pelvis and torso, a level sole for the feet (the rest foot counts as flat) and the source
   joint's own frame for the head and for nearly straight limbs;
3. local rotations -> hinge angles by :func:`anyskill.motion.poselib.local_rotations_to_dofs`,
   clamped to the joint limits;
4. root position = source hip-joint midpoint, scaled; the clip is then shifted vertically so that the
   foot soles rest on the ground in stance frames (median lowest-sole height over the stance frames of
   :func:`anyskill.motion.quality.stance`), and horizontally so it starts at the origin. Feet that still sink more
   than 2 cm into the floor (tiptoes, source toes through the source floor) get their ankle pitch corrected
   (:func:`anyskill.motion.quality.lift_sunken_feet`).

:func:`retarget_report` measures the result (bone direction errors, clamping, stance sole height,
root height, speed, facing); :func:`load_bvh` stores it in ``clip.meta["retarget"]``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.motion.bvh import CMU_ACKNOWLEDGEMENT, BvhMotion, find_joints, is_cmu, parse_bvh
from anyskill.motion.clip import MotionClip, MotionFormatError, clip_from_file, skeleton_for
from anyskill.motion.poselib import local_rotations_to_dofs
from anyskill.motion.quality import foot_soles, lift_sunken_feet, stance

# --------------------------------------------------------------------------------------------------
# Retargeting
# --------------------------------------------------------------------------------------------------

GROUND_TOLERANCE = 0.03
"""m: stance soles must be within this height of the ground (project requirement)."""
STANDING_ROOT_SPEED = 0.1
"""m/s: frames with both feet in stance and the root slower than this count as standing (report)."""
_BENT = math.sin(math.radians(20.0))  # knees/elbows flexed beyond this define their bending plane exactly


@dataclass(frozen=True)
class SourceFrame:
    """How source coordinates map to the humanoid's world: ``ours = scale * axes @ source``.

    ``axes`` (3, 3) rows: the source's forward, left and up directions (in source coordinates).
    """

    axes: np.ndarray
    scale: float  # m per source unit

    def points(self, pos: np.ndarray) -> np.ndarray:
        """(..., 3) source positions -> (..., 3) m, humanoid world axes (z up, rest facing +x)."""
        return self.scale * pos @ self.axes.T


def source_frame(bvh: BvhMotion, joints: dict[str, int], model: HumanoidModel) -> SourceFrame:
    """Axes from the rest pose (up: hips -> neck snapped to a coordinate axis; left: right -> left hip)
    and scale from the leg length (hip -> knee -> ankle) against the humanoid's."""
    rest = bvh.rest_positions()
    hip_c = 0.5 * (rest[joints["left_hip"]] + rest[joints["right_hip"]])
    up_vec = rest[joints["neck"]] - hip_c
    k = int(np.argmax(np.abs(up_vec)))
    up = np.zeros(3)
    up[k] = np.sign(up_vec[k])
    left = rest[joints["left_hip"]] - rest[joints["right_hip"]]
    left = left - left.dot(up) * up
    if np.linalg.norm(left) < 1e-9:
        raise MotionFormatError(bvh.path, "the rest pose's left and right hips coincide; cannot tell left from right")
    left /= np.linalg.norm(left)
    axes = np.stack([np.cross(left, up), left, up])

    def leg(side: str) -> float:
        h, k_, a = (rest[joints[f"{side}_{r}"]] for r in ("hip", "knee", "ankle"))
        return float(np.linalg.norm(k_ - h) + np.linalg.norm(a - k_))

    source_leg = 0.5 * (leg("left") + leg("right"))
    ours = float(np.linalg.norm(model.offsets[model.body_index("left_shin")])
                 + np.linalg.norm(model.offsets[model.body_index("left_foot")]))
    if not source_leg > 1e-9:
        raise MotionFormatError(bvh.path, "the skeleton's legs have zero length (hip, knee and ankle coincide at rest)")
    return SourceFrame(axes=axes, scale=ours / source_leg)


@dataclass
class _Targets:
    """Source data in the humanoid's world, and the per-frame body orientations that match it."""

    points: dict[str, np.ndarray]  # role -> (T, 3) m, humanoid world axes, not yet shifted
    body_rot: np.ndarray  # (T, B, 3, 3) target global body rotations
    foot_vector: dict[str, np.ndarray]  # side -> (3,) the foot bone (ankle -> toe) in the foot body frame


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Component of v orthogonal to the unit vectors ``axis`` (both (..., 3))."""
    return v - (v * axis).sum(-1, keepdims=True) * axis


def _basis(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(..., 3, 3) orthonormal frame with columns [a, c orthogonalised, a x c]."""
    a = _unit(a)
    n = _perp(c, a)
    # c parallel to a: any perpendicular will do (keeps the result finite)
    alt = _perp(np.where(np.abs(a[..., :1]) < 0.9, np.array([1.0, 0, 0]), np.array([0, 1.0, 0])), a)
    n = _unit(np.where(np.linalg.norm(n, axis=-1, keepdims=True) < 1e-9, alt, n))
    return np.stack([a, n, np.cross(a, n)], axis=-1)


def _triad(a_body, a_world, c_body, c_world) -> np.ndarray:
    """Rotation (T, 3, 3) taking body-frame direction a_body onto a_world exactly and c_body towards c_world."""
    a_body = np.broadcast_to(a_body, np.shape(a_world))
    c_body = np.broadcast_to(c_body, np.shape(a_world))
    return _basis(a_world, c_world) @ np.swapaxes(_basis(a_body, c_body), -1, -2)


def _bend_vector(model: HumanoidModel, child: str, grandchild: str) -> np.ndarray:
    """Direction (3,) in the parent's frame towards which the 1-DoF joint of ``child`` flexes its bone.

    The flexion side of the hinge range (the larger one) decides the sign: knees (0..160 deg) bend
    the shin backwards, elbows (-160..0 deg) bend the forearm forwards.
    """
    b = model.body_index(child)
    joint = next(j for j in model.joints if j.body == b)
    if len(joint.dofs) != 1:
        raise ValueError(f"body {child!r} must have a single hinge (it has {len(joint.dofs)})")
    d = joint.dofs[0]
    sign = 1.0 if model.dof_upper[d] >= -model.dof_lower[d] else -1.0
    bone = _unit(model.offsets[model.body_index(grandchild)])
    return sign * np.cross(model.dof_axis[d], bone)


def _targets(bvh: BvhMotion, joints: dict[str, int], frame: SourceFrame, model: HumanoidModel) -> _Targets:
    """Per-frame target global rotations of the humanoid's bodies from the source's bone directions."""
    pts = {role: frame.points(bvh.positions[:, j]) for role, j in joints.items()}
    pts["hip_centre"] = 0.5 * (pts["left_hip"] + pts["right_hip"])
    src_rot = rot.quat_to_matrix(torch.from_numpy(bvh.rotations)).numpy()  # (T, J, 3, 3)
    ax = frame.axes

    def source_axis(role: str, v_ours: np.ndarray) -> np.ndarray:
        """A direction fixed in the source joint's frame, given by its rest direction in our axes."""
        return src_rot[:, joints[role]] @ (ax.T @ v_ours) @ ax.T

    off = {n: model.offsets[i] for i, n in enumerate(model.body_names)}
    _, ey, ez = np.eye(3)
    rest = frame.points(bvh.rest_positions())
    foot_vector = {}  # per side, the rest foot (ankle -> toe), taken as flat, yaw removed, in the foot frame
    for side in ("left", "right"):
        v = rest[joints[f"{side}_toe"]] - rest[joints[f"{side}_ankle"]]
        foot_vector[side] = _unit(np.array([abs(v[0]), 0.0, v[2]]))

    r = {
        "pelvis": _triad(_unit(off["left_thigh"] - off["right_thigh"]), pts["left_hip"] - pts["right_hip"],
                         _unit(off["torso"]), pts["spine"] - pts["hip_centre"]),
        "torso": _triad(_unit(off["head"]), pts["neck"] - pts["spine"],
                        _unit(off["left_upper_arm"] - off["right_upper_arm"]),
                        pts["left_shoulder"] - pts["right_shoulder"]),
        "head": _triad(ez, pts["head_top"] - pts["neck"], ey, source_axis("head", ey)),
    }
    for side in ("left", "right"):
        for upper, lower, end, (j0, j1, j2) in (
            ("thigh", "shin", "foot", ("hip", "knee", "ankle")),
            ("upper_arm", "lower_arm", "hand", ("shoulder", "elbow", "wrist")),
        ):
            up_b, lo_b, end_b = f"{side}_{upper}", f"{side}_{lower}", f"{side}_{end}"
            d_upper = pts[f"{side}_{j1}"] - pts[f"{side}_{j0}"]
            d_lower = _unit(pts[f"{side}_{j2}"] - pts[f"{side}_{j1}"])
            bend_b = _bend_vector(model, lo_b, end_b)
            bend = _perp(d_lower, _unit(d_upper))  # |bend| = sin(flexion)
            own = _unit(source_axis(f"{side}_{j0}", bend_b))
            # Bent: the bending plane, exactly (the hinge then reproduces the lower bone). Nearly straight or
            # hyper-extended: the source joint's own frame fixes the twist.
            sin_flex = np.linalg.norm(bend, axis=-1, keepdims=True)
            agree = (bend * own).sum(-1, keepdims=True) > 0
            c = np.where(agree, bend + own * np.clip(1.0 - sin_flex / _BENT, 0.0, 1.0), own)
            r[up_b] = _triad(_unit(off[lo_b]), d_upper, bend_b, c)
            hinge = np.cross(_unit(off[end_b]), bend_b)  # hinge axis (body frame), sign irrelevant to the fit
            r[lo_b] = _triad(_unit(off[end_b]), d_lower, hinge, r[up_b] @ hinge)
        r[f"{side}_hand"] = r[f"{side}_lower_arm"]
        # Foot roll: level (lateral axis horizontal) when the foot is near horizontal, as soles are on flat
        # ground; the shin's hinge axis as the foot turns vertical. Source foot frames are not used: CMU rest
        # legs splay, which rolls them.
        d_foot = _unit(pts[f"{side}_toe"] - pts[f"{side}_ankle"])
        shin_axis = r[f"{side}_shin"] @ ey
        level = np.cross(ez, d_foot)  # |level| = cos(foot pitch)
        level = level * np.sign((level * shin_axis).sum(-1, keepdims=True) + 1e-12)
        w = np.linalg.norm(level, axis=-1, keepdims=True) ** 2
        r[f"{side}_foot"] = _triad(foot_vector[side], d_foot, ey, w * _unit(level) + (1.0 - w) * shin_axis)
    missing = [n for n in model.body_names if n not in r]
    if missing:
        raise ValueError(f"humanoid bodies {missing} have no retargeting rule; the BVH retargeter expects the 15-body "
                         "humanoid")
    body_rot = np.stack([r[n] for n in model.body_names], axis=1)
    return _Targets(points=pts, body_rot=body_rot, foot_vector=foot_vector)


def _raw_dofs(targets: _Targets, model: HumanoidModel) -> tuple[np.ndarray, np.ndarray]:
    """Target rotations -> root rotation (T, 4) wxyz and unclamped hinge angles (T, D) rad."""
    g = torch.from_numpy(targets.body_rot)
    local = g.clone()
    for b, p in enumerate(model.parents):
        if p >= 0:
            local[:, b] = g[:, p].transpose(-1, -2) @ g[:, b]
    q = rot.matrix_to_quat(local)
    return q[:, 0].numpy(), local_rotations_to_dofs(q, model)


# --------------------------------------------------------------------------------------------------
# Quality report
# --------------------------------------------------------------------------------------------------

# name -> (humanoid: (from body, to body) or (body, "axis") for a direction fixed in the body, source: (from, to))
_BONES: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "pelvis_lateral": (("right_thigh", "left_thigh"), ("right_hip", "left_hip")),
    "lower_spine": (("pelvis", "torso"), ("hip_centre", "spine")),
    "torso": (("torso", "head"), ("spine", "neck")),
    "shoulder_line": (("right_upper_arm", "left_upper_arm"), ("right_shoulder", "left_shoulder")),
    "head": (("head", "axis"), ("neck", "head_top")),
    **{
        f"{s}_{name}": ((f"{s}_{a}", f"{s}_{b}"), (f"{s}_{c}", f"{s}_{d}"))
        for s in ("left", "right")
        for name, a, b, c, d in (
            ("thigh", "thigh", "shin", "hip", "knee"),
            ("shin", "shin", "foot", "knee", "ankle"),
            ("upper_arm", "upper_arm", "lower_arm", "shoulder", "elbow"),
            ("forearm", "lower_arm", "hand", "elbow", "wrist"),
        )
    },
    "left_foot": (("left_foot", "axis"), ("left_ankle", "left_toe")),
    "right_foot": (("right_foot", "axis"), ("right_ankle", "right_toe")),
}


@dataclass
class RetargetReport:
    """How well a retargeted clip follows its BVH source. Angles in deg, lengths in m, speeds in m/s."""

    source: str
    frames: int
    fps: float
    duration_s: float
    scale_m_per_unit: float
    bone_error_deg: dict[str, tuple[float, float]]  # bone -> (mean, max) angle to the source bone
    bone_error_mean_deg: float  # mean over bones and frames
    bone_error_max_deg: float
    limit_violations_deg: dict[str, float]  # DoF -> largest amount by which the target exceeded its range
    clamped_frame_fraction: float  # frames with at least one clamped DoF
    stance_frames: int  # foot-frames in stance (anyskill.motion.quality.stance)
    stance_sole_height_mean_m: float  # signed mean of the stance foot's lowest sole point
    stance_sole_height_abs_max_m: float
    stance_within_tolerance: float  # fraction of stance foot-frames with |sole height| <= GROUND_TOLERANCE
    standing_frames: int  # frames with both feet in stance and the root slower than STANDING_ROOT_SPEED
    standing_sole_height_abs_max_m: float  # largest |sole height| of either foot in those frames
    min_sole_height_m: float  # lowest sole point over the clip (negative: below the floor)
    root_height_min_m: float
    root_height_median_m: float
    root_height_max_m: float
    distance_m: float  # horizontal root path length
    displacement_m: float  # horizontal start -> end
    speed_mean_mps: float  # distance / duration
    facing_error_median_deg: float  # heading vs direction of travel over 1 s windows while moving
    facing_error_p90_deg: float

    def as_dict(self) -> dict:
        """JSON-ready dict (for ``clip.meta["retarget"]``)."""
        out = asdict(self)
        out["bone_error_deg"] = {k: [round(v[0], 3), round(v[1], 3)] for k, v in self.bone_error_deg.items()}
        out["limit_violations_deg"] = {k: round(v, 3) for k, v in self.limit_violations_deg.items()}
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in out.items()}


def _bone_vectors(model: HumanoidModel, body_pos: np.ndarray, body_rot: np.ndarray,
                  foot_vector: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Humanoid bone directions (T, 3) by the names of ``_BONES``."""
    axis_vec = {"head": np.array([0.0, 0.0, 1.0]), "left_foot": foot_vector["left"], "right_foot": foot_vector["right"]}
    out = {}
    for name, ((a, b), _) in _BONES.items():
        if b == "axis":
            q = torch.from_numpy(body_rot[:, model.body_index(a)])
            out[name] = rot.quat_rotate(q, torch.from_numpy(axis_vec[a]).expand(len(q), 3)).numpy()
        else:
            out[name] = body_pos[:, model.body_index(b)] - body_pos[:, model.body_index(a)]
    return out


def _facing_errors(root_pos: np.ndarray, root_rot: np.ndarray, fps: float) -> np.ndarray:
    """Angles (deg) between the mean heading and the direction of travel over 1 s windows moving > 0.3 m/s."""
    w = max(round(fps), 1)
    heading = rot.heading_angle(torch.from_numpy(root_rot)).numpy()
    out = []
    for s in range(0, len(root_pos) - w, max(w // 4, 1)):
        d = root_pos[s + w, :2] - root_pos[s, :2]
        if np.linalg.norm(d) < 0.3 * w / fps:
            continue
        h = np.angle(np.exp(1j * heading[s : s + w + 1]).mean())
        out.append(abs(np.degrees(np.angle(np.exp(1j * (math.atan2(d[1], d[0]) - h))))))
    return np.array(out)


def _report(source: str, targets: _Targets, raw_dof: np.ndarray, clip: MotionClip, scale: float) -> RetargetReport:
    model = clip.model
    pos, rq = clip.body_states()
    ours = _bone_vectors(model, pos, rq, targets.foot_vector)
    errors = {}
    for name, (_, (a, b)) in _BONES.items():
        cos = (_unit(ours[name]) * _unit(targets.points[b] - targets.points[a])).sum(-1)
        errors[name] = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    all_err = np.stack(list(errors.values()))
    over = np.maximum(raw_dof - model.dof_upper, model.dof_lower - raw_dof)  # (T, D) > 0 where clamped
    heights, centres = foot_soles(model, pos, rq)
    in_stance = stance(heights, centres, clip.fps)
    sh = heights[in_stance]
    root_speed = np.linalg.norm(np.gradient(clip.root_pos[:, :2], clip.dt, axis=0), axis=-1)
    standing = in_stance.all(-1) & (root_speed < STANDING_ROOT_SPEED)
    step = np.linalg.norm(np.diff(clip.root_pos[:, :2], axis=0), axis=-1)
    facing = _facing_errors(clip.root_pos, clip.root_rot, clip.fps)
    return RetargetReport(
        source=source,
        frames=clip.num_frames,
        fps=clip.fps,
        duration_s=clip.duration,
        scale_m_per_unit=scale,
        bone_error_deg={k: (float(v.mean()), float(v.max())) for k, v in errors.items()},
        bone_error_mean_deg=float(all_err.mean()),
        bone_error_max_deg=float(all_err.max()),
        limit_violations_deg={model.dof_names[d]: float(np.degrees(v)) for d, v in enumerate(over.max(0)) if v > 1e-6},
        clamped_frame_fraction=float((over > 1e-6).any(-1).mean()),
        stance_frames=int(in_stance.sum()),
        stance_sole_height_mean_m=float(sh.mean()) if sh.size else float("nan"),
        stance_sole_height_abs_max_m=float(np.abs(sh).max()) if sh.size else float("nan"),
        stance_within_tolerance=float((np.abs(sh) <= GROUND_TOLERANCE).mean()) if sh.size else float("nan"),
        standing_frames=int(standing.sum()),
        standing_sole_height_abs_max_m=float(np.abs(heights[standing]).max()) if standing.any() else float("nan"),
        min_sole_height_m=float(heights.min()),
        root_height_min_m=float(clip.root_pos[:, 2].min()),
        root_height_median_m=float(np.median(clip.root_pos[:, 2])),
        root_height_max_m=float(clip.root_pos[:, 2].max()),
        distance_m=float(step.sum()),
        displacement_m=float(np.linalg.norm(clip.root_pos[-1, :2] - clip.root_pos[0, :2])),
        speed_mean_mps=float(step.sum() / clip.duration),
        facing_error_median_deg=float(np.median(facing)) if facing.size else float("nan"),
        facing_error_p90_deg=float(np.percentile(facing, 90)) if facing.size else float("nan"),
    )


def retarget_report(bvh: BvhMotion, clip: MotionClip) -> RetargetReport:
    """Measure ``clip`` (retargeted from ``bvh`` by :func:`retarget_bvh`) against its source."""
    model = clip.model
    src = bvh.resample(clip.fps)
    if src.num_frames != clip.num_frames:
        raise ValueError(f"{bvh.path.name} at {clip.fps} fps has {src.num_frames} frames, the clip {clip.num_frames}")
    joints = find_joints(src, model)
    frame = source_frame(src, joints, model)
    targets = _targets(src, joints, frame, model)
    return _report(bvh.path.name, targets, _raw_dofs(targets, model)[1], clip, frame.scale)


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------


def retarget_bvh(bvh: BvhMotion, model: HumanoidModel | None = None, fps: float = 30.0,
                 name: str | None = None) -> MotionClip:
    """Retarget a parsed BVH to the humanoid at ``fps``; the :class:`RetargetReport` goes in
    ``clip.meta["retarget"]``."""
    model = model or load_humanoid()
    src = bvh.resample(fps)
    if src.num_frames < 2:
        raise MotionFormatError(bvh.path, f"too short: {bvh.num_frames} frames give {src.num_frames} at {fps} fps "
                                          "(need >= 2)")
    joints = find_joints(src, model)
    frame = source_frame(src, joints, model)
    targets = _targets(src, joints, frame, model)
    if not (np.all(np.isfinite(targets.body_rot)) and all(np.all(np.isfinite(p)) for p in targets.points.values())):
        raise MotionFormatError(bvh.path, "retargeting gives non-finite values: the skeleton or motion is degenerate")
    root_rot, raw_dof = _raw_dofs(targets, model)
    dof = np.clip(raw_dof, model.dof_lower, model.dof_upper)
    root_pos = targets.points["hip_centre"].copy()
    root_pos[:, :2] -= root_pos[0, :2]

    # Ground: shift so the stance soles rest on z = 0.
    pos, rq = skeleton_for(model).forward_kinematics(
        torch.from_numpy(root_pos), torch.from_numpy(root_rot), torch.from_numpy(dof))
    heights, centres = foot_soles(model, pos.numpy(), rq.numpy())
    in_stance = stance(heights, centres, fps)
    if in_stance.sum() >= 0.05 * len(in_stance):
        ground = float(np.median(heights[in_stance]))
    else:  # no clear stance (e.g. a jump): the lowest soles define the ground
        ground = float(np.percentile(heights.min(-1), 5))
    root_pos[:, 2] -= ground
    dof, fixes = lift_sunken_feet(model, root_pos, root_rot, dof, fps)

    clip = clip_from_file(
        bvh.path,
        name=name or bvh.path.stem,
        fps=fps,
        root_pos=root_pos,
        root_rot=root_rot,
        dof_pos=dof,
        meta={
            "source": bvh.path.name,
            "importer": "bvh",
            "source_fps": bvh.fps,
            "source_frames": bvh.num_frames,
            "joint_map": {role: bvh.joint_names[j] for role, j in joints.items()},
        },
        model=model,
    )
    if is_cmu(bvh):
        clip.meta["acknowledgement"] = CMU_ACKNOWLEDGEMENT
        clip.meta["licence"] = "CMU Graphics Lab Motion Capture Database: free to use, with the acknowledgement"
    clip.meta["retarget"] = _report(bvh.path.name, targets, raw_dof, clip, frame.scale).as_dict()
    clip.meta["retarget"].update(fixes)
    return clip


def load_bvh(path: str | Path, model: HumanoidModel | None = None, fps: float = 30.0) -> MotionClip:
    """Load a CMU-style BVH file retargeted to the humanoid at ``fps`` (default: the 30 Hz control rate).

    ``clip.meta`` holds the source file name, the joint map, the CMU acknowledgement (for CMU data,
    see :func:`is_cmu`) and the
    :class:`RetargetReport` (``meta["retarget"]``). Bad input raises :class:`MotionFormatError`.
    """
    return retarget_bvh(parse_bvh(path), model, fps)


def source_points_for_plot(bvh: BvhMotion, clip: MotionClip) -> tuple[np.ndarray, np.ndarray]:
    """The source skeleton in the retargeted clip's world (m, z up, same start and ground), for side-by-side plots.

    Returns positions (T_source, J, 3) at the source's own frame rate and the parent indices (J,).
    """
    joints = find_joints(bvh, clip.model)
    frame = source_frame(bvh, joints, clip.model)
    pts = frame.points(bvh.positions)
    hip_centre0 = 0.5 * (pts[0, joints["left_hip"]] + pts[0, joints["right_hip"]])
    return pts + (clip.root_pos[0] - hip_centre0), bvh.parents
