"""CMU-style BVH motion capture: parsing, the source skeleton's own FK, and retargeting to the humanoid.

:func:`parse_bvh` reads any BVH (HIERARCHY / MOTION, ``ROOT`` / ``JOINT`` / ``End Site``, any channel
order per joint) into a :class:`BvhMotion` holding the source skeleton and per-frame global joint
positions in the file's own units and axes. Euler channels compose in the listed order as intrinsic
rotations: ``CHANNELS 3 Zrotation Xrotation Yrotation`` means R = Rz(z) Rx(x) Ry(y), so the last
listed axis is applied to the child offsets first.

:func:`load_bvh` retargets to the humanoid by matching *bone directions*, not joint angles, so the
source's rest pose, bone lengths and Euler conventions never reach the clip:

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
   foot soles rest on the ground in stance frames (median lowest-sole height over frames whose foot is
   still), and horizontally so it starts at the origin. Feet that still sink more than 2 cm into the
   floor (tiptoes, source toes through the source floor) get their ankle pitch corrected.

:func:`retarget_report` measures the result (bone direction errors, clamping, stance sole height,
root height, speed, facing); :func:`load_bvh` stores it in ``clip.meta["retarget"]``.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from anyskill.motion import rotations as rot
from anyskill.motion.clip import (
    MAX_DURATION_S,
    MAX_FPS,
    MAX_FRAMES,
    MIN_FPS,
    MotionClip,
    MotionFormatError,
    check_file_size,
    clip_from_file,
    describe,
    skeleton_for,
)
from anyskill.motion.poselib import local_rotations_to_dofs
from anyskill.sim.model import HumanoidModel, load_humanoid

CMU_ACKNOWLEDGEMENT = (
    "The data used in this project was obtained from mocap.cs.cmu.edu. "
    "The database was created with funding from NSF EIA-0196217."
)

MAX_JOINTS = 256
"""Most joints in a BVH skeleton, End Sites included (the CMU skeleton has 38)."""
MAX_HIERARCHY_DEPTH = 64
"""Deepest nesting of joints in a BVH HIERARCHY, the root at depth 1 (CMU: 11)."""
MAX_JOINT_FRAMES = 2_000_000
"""Most joints x frames of a BVH recording, as stored and after resampling; bounds the memory of parsing and
retargeting (a few hundred bytes per joint-frame): 52,000 frames of the CMU skeleton, 7 min at 120 fps. (The clip
it gives, at 30 fps by default, must also keep within :data:`~anyskill.motion.clip.MAX_FRAMES`.)"""
MAX_ABS_VALUE = 1e6
"""Largest magnitude of an OFFSET or channel value, in the file's units (cm, inches, ...; degrees)."""

_CHANNELS = {
    "xposition": ("pos", 0), "yposition": ("pos", 1), "zposition": ("pos", 2),
    "xrotation": ("rot", 0), "yrotation": ("rot", 1), "zrotation": ("rot", 2),
}


# --------------------------------------------------------------------------------------------------
# Parsing and source FK
# --------------------------------------------------------------------------------------------------


@dataclass
class BvhMotion:
    """A BVH file: source skeleton and motion, in the file's own units and axes.

    ``J`` joints in file order, including ``End Site`` leaves (named ``"<parent>_end"``, no channels).
    """

    path: Path
    joint_names: tuple[str, ...]  # (J,)
    parents: np.ndarray  # (J,) int, -1 for the root
    offsets: np.ndarray  # (J, 3) source units, joint origin in the parent frame at rest
    channels: tuple[tuple[str, ...], ...]  # (J,) channel names as written in the file
    frame_time: float  # s
    local_rot: np.ndarray  # (T, J, 4) wxyz, joint rotation in the parent frame
    local_pos: np.ndarray  # (T, J, 3) source units, OFFSET + position channels
    positions: np.ndarray  # (T, J, 3) source units, global joint positions (source FK)
    rotations: np.ndarray  # (T, J, 4) wxyz, global joint rotations

    @property
    def num_frames(self) -> int:
        return int(self.local_rot.shape[0])

    @property
    def fps(self) -> float:
        """Frames per second; 1 / frame_time snapped to a whole number when within 0.01 of one
        (``Frame Time: .0083333`` is 120 fps)."""
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 0.01 else fps

    @property
    def is_end_site(self) -> np.ndarray:
        """(J,) bool: End Site leaves."""
        return np.array([len(c) == 0 and n.endswith("_end") for n, c in zip(self.joint_names, self.channels)])

    def index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise KeyError(f"{self.path.name}: no joint named {name!r}; joints are {self.joint_names}") from None

    def rest_positions(self) -> np.ndarray:
        """(J, 3) global joint positions of the rest pose (all rotations zero, root at its OFFSET)."""
        pos = np.zeros((len(self.parents), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets[j] if p < 0 else pos[p] + self.offsets[j]
        return pos

    def resample(self, fps: float) -> BvhMotion:
        """The motion at ``fps``: root/joint translations interpolated linearly, rotations by slerp.

        Exact decimation when the source rate is a multiple of ``fps`` (120 -> 30 keeps every 4th frame). Raises
        :class:`MotionFormatError` if the result would exceed ``MAX_FRAMES`` or :data:`MAX_JOINT_FRAMES`.
        """
        if fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"fps must be a positive number, got {fps}")
        src_fps = self.fps
        n_out = math.floor((self.num_frames - 1) * fps / src_fps + 1e-6) + 1
        if n_out > MAX_FRAMES or n_out * len(self.parents) > MAX_JOINT_FRAMES:
            raise MotionFormatError(
                self.path, f"at {fps:g} fps the motion has {n_out} frames of {len(self.parents)} joints, over the limit "
                f"MAX_FRAMES = {MAX_FRAMES} or MAX_JOINT_FRAMES = {MAX_JOINT_FRAMES}; split the recording into shorter clips"
            )
        if abs(fps - src_fps) < 1e-9:
            return self
        s = np.arange(n_out) * (src_fps / fps)  # fractional source frame of each output frame
        i0 = np.floor(s + 1e-6).astype(int).clip(0, self.num_frames - 1)
        frac = np.clip(s - i0, 0.0, 1.0)
        frac[frac < 1e-6] = 0.0
        if not frac.any():  # exact decimation
            local_rot, local_pos = self.local_rot[i0], self.local_pos[i0]
        else:
            i1 = np.minimum(i0 + 1, self.num_frames - 1)
            q0 = torch.from_numpy(self.local_rot[i0])
            q1 = torch.from_numpy(self.local_rot[i1])
            t = torch.from_numpy(frac)[:, None].expand(q0.shape[:-1])
            local_rot = rot.quat_slerp(q0, q1, t).numpy()
            f = frac[:, None, None]
            local_pos = (1.0 - f) * self.local_pos[i0] + f * self.local_pos[i1]
        positions, rotations = _source_fk(self.parents, local_rot, local_pos)
        return replace(self, frame_time=1.0 / fps, local_rot=local_rot, local_pos=local_pos,
                       positions=positions, rotations=rotations)


def parse_bvh(path: str | Path) -> BvhMotion:
    """Read a BVH file; any problem raises :class:`MotionFormatError` naming the file and the reason.

    Sizes and values are checked against the limits (file size, :data:`MAX_JOINTS`, :data:`MAX_HIERARCHY_DEPTH`,
    frame rate, frames, duration, :data:`MAX_JOINT_FRAMES`, :data:`MAX_ABS_VALUE`) before they size any allocation.
    """
    path = Path(path)
    try:
        check_file_size(path)
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise MotionFormatError(path, f"not a text file ({e}); a BVH file is plain text") from None
    except OSError as e:
        raise MotionFormatError(path, f"cannot read the file ({e})") from None
    lines = text.splitlines()
    motion_line = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_line is None:
        if "HIERARCHY" not in text[:200].upper():
            raise MotionFormatError(path, "not a BVH file: it does not start with a HIERARCHY section")
        raise MotionFormatError(path, "missing MOTION section after the HIERARCHY (truncated or not a complete BVH file)")
    names, parents, offsets, channels = _parse_hierarchy(" ".join(lines[:motion_line]).split(), path)
    frame_time, values = _parse_motion(lines[motion_line + 1 :], motion_line + 2, channels, path)

    t, nj = values.shape[0], len(names)
    local_rot = torch.zeros(t, nj, 4, dtype=torch.float64)
    local_rot[..., 0] = 1.0
    local_pos = np.broadcast_to(offsets, (t, nj, 3)).copy()
    col = 0
    for j, chans in enumerate(channels):
        q = local_rot[:, j]
        for name in chans:
            kind, axis = _CHANNELS[name.lower()]
            v = values[:, col]
            col += 1
            if kind == "pos":
                local_pos[:, j, axis] += v
            else:
                ax = torch.zeros(t, 3, dtype=torch.float64)
                ax[:, axis] = 1.0
                q = rot.quat_mul(q, rot.quat_from_axis_angle(ax, torch.from_numpy(np.deg2rad(v))))
        local_rot[:, j] = q
    local_rot_np = local_rot.numpy()
    positions, rotations = _source_fk(np.array(parents), local_rot_np, local_pos)
    return BvhMotion(
        path=path,
        joint_names=tuple(names),
        parents=np.array(parents),
        offsets=np.array(offsets),
        channels=tuple(tuple(c) for c in channels),
        frame_time=frame_time,
        local_rot=local_rot_np,
        local_pos=local_pos,
        positions=positions,
        rotations=rotations,
    )


def _parse_hierarchy(tokens: list[str], path: Path):
    """Tokens of the HIERARCHY section -> names, parents, offsets (J, 3), channels per joint.

    Iterative, with a stack of the open joints, so that the nesting depth is limited by
    :data:`MAX_HIERARCHY_DEPTH` rather than by Python's recursion limit.
    """
    names: list[str] = []
    parents: list[int] = []
    offsets: list[np.ndarray] = []
    channels: list[list[str]] = []
    pos = 0

    def take(what: str) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise MotionFormatError(path, f"HIERARCHY ends early while reading {what} (truncated file or unbalanced braces)")
        pos += 1
        return tokens[pos - 1]

    def expect(word: str, where: str) -> None:
        tok = take(f"'{word}' of {where}")
        if tok.upper() != word.upper():
            raise MotionFormatError(path, f"expected '{word}' in {where}, found {describe(tok)}")

    def number(where: str) -> float:
        tok = take(where)
        try:
            return float(tok)
        except ValueError:
            raise MotionFormatError(path, f"non-numeric value {describe(tok)} in {where}") from None

    def open_joint(name: str, parent: int) -> None:
        if len(names) >= MAX_JOINTS:
            raise MotionFormatError(path, f"more than the limit MAX_JOINTS = {MAX_JOINTS} joints (End Sites included)")
        where = f"joint {describe(name)}"
        names.append(name)
        parents.append(parent)
        channels.append([])
        expect("{", where)
        expect("OFFSET", where)
        offset = np.array([number(f"OFFSET of {where}") for _ in range(3)])
        if not np.all(np.abs(offset) <= MAX_ABS_VALUE):  # also catches NaN
            raise MotionFormatError(path, f"OFFSET of {where} is not finite or larger than the limit "
                                          f"MAX_ABS_VALUE = {MAX_ABS_VALUE:g}: {offset}")
        offsets.append(offset)

    if not tokens or tokens[0].upper() != "HIERARCHY":
        raise MotionFormatError(path, "not a BVH file: it does not start with HIERARCHY")
    pos = 1
    expect("ROOT", "HIERARCHY")
    open_joint(take("the root joint's name"), -1)
    stack = [(0, False)]  # the open joints: (index, whether it is an End Site)
    while stack:
        j, end_site = stack[-1]
        where = f"joint {describe(names[j])}"
        tok = take(f"the body of {where}")
        key = tok.upper()
        if key == "}":
            stack.pop()
        elif key == "CHANNELS" and not end_site:
            n = number(f"CHANNELS count of {where}")
            if not (math.isfinite(n) and n.is_integer() and 0 <= n <= len(_CHANNELS)):
                raise MotionFormatError(path, f"CHANNELS count {n:g} of {where} must be a whole number from 0 to {len(_CHANNELS)}")
            chans = [take(f"CHANNELS of {where}") for _ in range(int(n))]
            bad = [describe(c) for c in chans if c.lower() not in _CHANNELS]
            if bad:
                raise MotionFormatError(path, f"unknown channel(s) {bad} in {where}; expected X/Y/Z position/rotation")
            channels[j] = chans
        elif key in ("JOINT", "END") and not end_site:
            if len(stack) >= MAX_HIERARCHY_DEPTH:
                raise MotionFormatError(path, f"joints nested more than the limit MAX_HIERARCHY_DEPTH = "
                                              f"{MAX_HIERARCHY_DEPTH} deep (at {where})")
            if key == "END":
                expect("Site", where)
            open_joint(take(f"the name of a child of {where}") if key == "JOINT" else f"{names[j]}_end", j)
            stack.append((len(names) - 1, key == "END"))
        else:
            raise MotionFormatError(path, f"unexpected {describe(tok)} in {where}")
    if pos != len(tokens):
        raise MotionFormatError(path, f"unexpected {describe(tokens[pos])} after the root joint; only one ROOT is supported")
    return names, parents, offsets, channels


def _parse_motion(lines: list[str], first_line_no: int, channels: list[list[str]], path: Path) -> tuple[float, np.ndarray]:
    """Lines after MOTION -> (frame time s, (T, C) channel values), for the joints' ``channels``."""
    lines = [(first_line_no + i, line) for i, line in enumerate(lines) if line.strip()]
    header: dict[str, str] = {}
    for key in ("frames:", "frame time:"):
        if not lines or not lines[0][1].strip().lower().startswith(key):
            raise MotionFormatError(path, f"MOTION section must start with 'Frames:' and 'Frame Time:' lines (missing {key!r})")
        header[key] = lines.pop(0)[1].strip()[len(key):].strip()
    try:
        n_frames = int(header["frames:"])
        frame_time = float(header["frame time:"])
    except ValueError:
        raise MotionFormatError(path, f"malformed 'Frames:' / 'Frame Time:' values {[describe(v) for v in header.values()]}") from None
    if n_frames < 1 or not (math.isfinite(frame_time) and frame_time > 0):
        raise MotionFormatError(path, f"need Frames >= 1 and Frame Time > 0, got {n_frames} and {frame_time}")
    fps = 1.0 / frame_time
    if not MIN_FPS <= fps <= MAX_FPS:
        raise MotionFormatError(path, f"Frame Time {frame_time:g} s is {fps:g} fps, outside the supported range "
                                      f"[MIN_FPS, MAX_FPS] = [{MIN_FPS:g}, {MAX_FPS:g}]")
    if (n_frames - 1) * frame_time > MAX_DURATION_S:
        raise MotionFormatError(path, f"{(n_frames - 1) * frame_time:.0f} s long, more than the limit MAX_DURATION_S = "
                                      f"{MAX_DURATION_S:g} s; split the recording into shorter clips")
    if n_frames * len(channels) > MAX_JOINT_FRAMES:
        raise MotionFormatError(path, f"{n_frames} frames of {len(channels)} joints, more than the limit MAX_JOINT_FRAMES "
                                      f"= {MAX_JOINT_FRAMES} joint-frames; split the recording into shorter clips")
    if len(lines) < n_frames:
        raise MotionFormatError(path, f"truncated file: the header declares {n_frames} frames but only {len(lines)} follow")
    if len(lines) > n_frames:
        raise MotionFormatError(path, f"the header declares {n_frames} frames but {len(lines)} lines of values follow")
    num_channels = sum(len(c) for c in channels)
    rows = []
    for line_no, line in lines:
        toks = line.split()
        if len(toks) != num_channels:
            raise MotionFormatError(
                path, f"line {line_no}: {len(toks)} values, but the HIERARCHY declares {num_channels} channels per frame"
            )
        try:
            row = np.array(toks, dtype=np.float64)
        except ValueError:
            bad = next(tk for tk in toks if not _is_float(tk))
            raise MotionFormatError(path, f"line {line_no}: non-numeric value {describe(bad)}") from None
        if not np.all(np.isfinite(row)):
            raise MotionFormatError(path, f"line {line_no}: NaN or infinite value in the motion data")
        if np.any(np.abs(row) > MAX_ABS_VALUE):
            raise MotionFormatError(path, f"line {line_no}: value {np.abs(row).max():g} is larger than the limit "
                                          f"MAX_ABS_VALUE = {MAX_ABS_VALUE:g}")
        rows.append(row)
    return frame_time, np.array(rows).reshape(n_frames, num_channels)


def _is_float(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _source_fk(parents: np.ndarray, local_rot: np.ndarray, local_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 4) local rotations and (T, J, 3) local translations -> global positions (T, J, 3), rotations."""
    lr = torch.from_numpy(np.ascontiguousarray(local_rot))
    lp = torch.from_numpy(np.ascontiguousarray(local_pos))
    pos: list[torch.Tensor] = []
    rots: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            pos.append(lp[:, j])
            rots.append(lr[:, j])
        else:
            pos.append(pos[p] + rot.quat_rotate(rots[p], lp[:, j]))
            rots.append(rot.quat_mul(rots[p], lr[:, j]))
    return torch.stack(pos, 1).numpy(), torch.stack(rots, 1).numpy()


# --------------------------------------------------------------------------------------------------
# Joint map: CMU-style names (cgspeed, MotionBuilder-friendly, and other common conversions)
# --------------------------------------------------------------------------------------------------

_SIDE_NAMES = {
    "hip": ("{Side}UpLeg", "{Side}Hip", "{Side}Thigh", "{Side}UpperLeg", "{s}Thigh", "{S}Hip", "{S}_Hip", "{S}Femur"),
    "knee": ("{Side}Leg", "{Side}Knee", "{Side}Shin", "{Side}LowerLeg", "{s}Shin", "{S}Knee", "{S}_Knee", "{S}Tibia"),
    "ankle": ("{Side}Foot", "{Side}Ankle", "{s}Foot", "{S}Ankle", "{S}_Ankle", "{S}Foot"),
    "toe": ("{Side}ToeBase", "{Side}Toe", "{Side}Toes", "{s}Toe", "{S}Toe", "{S}_Toe", "{S}Toes"),
    "shoulder": ("{Side}Arm", "{Side}UpperArm", "{Side}UpArm", "{s}Shldr", "{Side}Humerus", "{Side}Shoulder",
                 "{S}Shoulder", "{S}_Shoulder", "{S}Humerus"),
    "elbow": ("{Side}ForeArm", "{Side}Elbow", "{Side}LowerArm", "{s}ForeArm", "{S}Elbow", "{S}_Elbow", "{S}Radius"),
    "wrist": ("{Side}Hand", "{Side}Wrist", "{s}Hand", "{S}Wrist", "{S}_Wrist", "{S}Hand"),
}
_CENTRE_NAMES = {
    "neck": ("Neck", "Neck1", "UpperNeck", "LowerNeck"),
    "head": ("Head",),
}
_REQUIRED_SIDE = ("hip", "knee", "ankle", "shoulder", "elbow", "wrist")


def _normalise(name: str) -> str:
    return name.split(":")[-1].replace("_", "").replace(" ", "").lower()


def _candidates() -> dict[str, tuple[str, ...]]:
    out = {k: v for k, v in _CENTRE_NAMES.items()}
    for side, s, ss in (("Left", "l", "L"), ("Right", "r", "R")):
        for role, pats in _SIDE_NAMES.items():
            out[f"{side.lower()}_{role}"] = tuple(p.format(Side=side, s=s, S=ss) for p in pats)
    return out


def find_joints(bvh: BvhMotion, model: HumanoidModel | None = None) -> dict[str, int]:
    """Map roles (``left_hip``, ``left_knee``, ..., ``neck``, ``head``, ``spine``, ``head_top``,
    ``left_toe`` ...) to joint indices of ``bvh``; name matching ignores case, ``_``, spaces and
    ``prefix:`` namespaces. ``spine`` is the joint of the hips -> neck chain nearest (at rest) to where
    ``model`` has its torso origin. Raises :class:`MotionFormatError` listing missing roles."""
    model = model or load_humanoid()
    by_name: dict[str, int] = {}
    for j, n in enumerate(bvh.joint_names):
        by_name.setdefault(_normalise(n), j)
    found: dict[str, int] = {}
    for role, names in _candidates().items():
        for n in names:
            if _normalise(n) in by_name:
                found[role] = by_name[_normalise(n)]
                break
    required = ["neck", "head"] + [f"{side}_{r}" for side in ("left", "right") for r in _REQUIRED_SIDE]
    missing = [r for r in required if r not in found]
    if missing:
        cands = _candidates()
        detail = "; ".join(f"{r} (one of {', '.join(cands[r][:4])})" for r in missing)
        raise MotionFormatError(
            bvh.path,
            f"skeleton is missing required joints: {detail}. A CMU-like skeleton is expected (Hips, "
            f"LeftUpLeg/LeftHip, LeftLeg/LeftKnee, LeftFoot/LeftAnkle, Neck, Head, LeftArm/LeftShoulder, "
            f"LeftForeArm/LeftElbow, LeftHand/LeftWrist and the right side); joints found: {', '.join(bvh.joint_names)}",
        )
    children = [[c for c, p in enumerate(bvh.parents) if p == j] for j in range(len(bvh.parents))]
    rest = bvh.rest_positions()
    for side in ("left", "right"):
        ankle = found[f"{side}_ankle"]
        if f"{side}_toe" not in found or bvh.parents[found[f"{side}_toe"]] != ankle:
            # No toe joint: the ankle's child (joint or End Site) farthest from it marks the toes.
            if not children[ankle]:
                raise MotionFormatError(bvh.path, f"joint {bvh.joint_names[ankle]!r} (the {side} ankle) has no child marking the toes")
            found[f"{side}_toe"] = max(children[ankle], key=lambda c: np.linalg.norm(rest[c] - rest[ankle]))
    head = found["head"]
    found["head_top"] = max(children[head], key=lambda c: np.linalg.norm(rest[c] - rest[head])) if children[head] else head
    torso = model.offsets[model.body_index("torso")]
    head_origin = torso + model.offsets[model.body_index("head")]
    found["spine"] = _spine_joint(bvh, found, rest, float(np.linalg.norm(torso) / np.linalg.norm(head_origin)))
    return found


def _spine_joint(bvh: BvhMotion, found: dict[str, int], rest: np.ndarray, fraction: float) -> int:
    """The joint on the root -> neck chain whose rest distance from the hip centre is nearest to
    ``fraction`` of the hip-centre -> neck distance."""
    chain = []
    j = int(bvh.parents[found["neck"]])
    while j > 0:
        chain.append(j)
        j = int(bvh.parents[j])
    hip_c = 0.5 * (rest[found["left_hip"]] + rest[found["right_hip"]])
    neck = rest[found["neck"]]
    span = np.linalg.norm(neck - hip_c)
    usable = [c for c in chain if 0.15 * span < np.linalg.norm(rest[c] - hip_c) < 0.85 * span]
    if not usable:
        raise MotionFormatError(
            bvh.path, "no spine joint between the hips and the neck (need one, e.g. Spine or Chest, to orient pelvis and torso)"
        )
    return min(usable, key=lambda c: abs(np.linalg.norm(rest[c] - hip_c) / span - fraction))


# --------------------------------------------------------------------------------------------------
# Retargeting
# --------------------------------------------------------------------------------------------------

STANCE_SPEED = 0.3
"""m/s: a foot whose origin moves slower than this horizontally is in stance (ground contact)."""
GROUND_TOLERANCE = 0.03
"""m: stance soles must be within this height of the ground (project requirement)."""
_SINK = 0.02  # m: soles lower than this below the ground get their ankle pitch corrected
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
                        _unit(off["left_upper_arm"] - off["right_upper_arm"]), pts["left_shoulder"] - pts["right_shoulder"]),
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
        raise ValueError(f"humanoid bodies {missing} have no retargeting rule; the BVH retargeter expects the 15-body humanoid")
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
    stance_frames: int  # foot-frames in stance (horizontal foot speed < STANCE_SPEED)
    stance_sole_height_mean_m: float  # signed mean of the stance foot's lowest sole point
    stance_sole_height_abs_max_m: float
    stance_within_tolerance: float  # fraction of stance foot-frames with |sole height| <= GROUND_TOLERANCE
    standing_frames: int  # frames with both feet in stance and the root slower than STANCE_SPEED / 3
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


@functools.lru_cache(maxsize=8)
def _sole_points(model: HumanoidModel) -> dict[str, np.ndarray]:
    """Foot body -> (8, 3) corners of its box geom in the body frame, m."""
    m = model.mj_model()
    out = {}
    for name in ("left_foot", "right_foot"):
        g = m.geom(name)
        if int(g.type[0]) != 6:  # mjGEOM_BOX
            raise ValueError(f"geom {name!r} must be a box to define the foot sole")
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)
        corners = torch.from_numpy(signs * g.size)
        gq = torch.from_numpy(np.asarray(g.quat, dtype=np.float64)).expand(8, 4)
        out[name] = (torch.from_numpy(np.asarray(g.pos, dtype=np.float64)) + rot.quat_rotate(gq, corners)).numpy()
    return out


def _sole_height(model: HumanoidModel, foot: str, pos: np.ndarray, quat: np.ndarray) -> np.ndarray:
    """(N,) m: height of the lowest corner of ``foot``'s box for foot body positions (N, 3), rotations (N, 4)."""
    corners = torch.from_numpy(_sole_points(model)[foot]).expand(len(pos), 8, 3)
    q = torch.from_numpy(np.ascontiguousarray(quat))[:, None].expand(-1, 8, 4)
    return pos[:, 2] + rot.quat_rotate(q, corners)[..., 2].numpy().min(-1)


def _foot_contacts(model: HumanoidModel, body_pos: np.ndarray, body_rot: np.ndarray, fps: float):
    """Lowest sole height (T, 2) m and stance mask (T, 2) of the left and right foot."""
    heights, stance = [], []
    for name in ("left_foot", "right_foot"):
        b = model.body_index(name)
        heights.append(_sole_height(model, name, body_pos[:, b], body_rot[:, b]))
        vel = np.gradient(body_pos[:, b, :2], 1.0 / fps, axis=0)
        stance.append(np.linalg.norm(vel, axis=-1) < STANCE_SPEED)
    return np.stack(heights, -1), np.stack(stance, -1)


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
    heights, stance = _foot_contacts(model, pos, rq, clip.fps)
    sh = heights[stance]
    root_speed = np.linalg.norm(np.gradient(clip.root_pos[:, :2], clip.dt, axis=0), axis=-1)
    standing = stance.all(-1) & (root_speed < STANCE_SPEED / 3)
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
        stance_frames=int(stance.sum()),
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


def lift_sunken_feet(model: HumanoidModel, root_pos: np.ndarray, root_rot: np.ndarray, dof: np.ndarray,
                      fps: float) -> tuple[np.ndarray, dict]:
    """Where a foot's sole sinks more than ``_SINK`` below the ground (tiptoes, gliding steps, or sources
    whose toes pass through their floor), pitch its ankle (y hinge) by the least angle (0.5 deg steps, within
    the limits) that brings the sole up to -``_SINK``. Returns new hinge angles and a summary."""
    pos, rq = skeleton_for(model).forward_kinematics(
        torch.from_numpy(root_pos), torch.from_numpy(root_rot), torch.from_numpy(dof))
    pos, rq = pos.numpy(), rq.numpy()
    heights = _foot_contacts(model, pos, rq, fps)[0]
    dof = dof.copy()
    steps = np.radians(np.arange(0.5, 60.01, 0.5))
    n_fixed, largest = 0, 0.0
    for f, name in enumerate(("left_foot", "right_foot")):
        frames = np.nonzero(heights[:, f] < -_SINK)[0]
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
            h = _sole_height(model, name, np.repeat(pos[frames, b], len(steps), 0), q.reshape(-1, 4).numpy())
            ok = h.reshape(len(frames), -1) >= -_SINK
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


def retarget_bvh(bvh: BvhMotion, model: HumanoidModel | None = None, fps: float = 30.0,
                 name: str | None = None) -> MotionClip:
    """Retarget a parsed BVH to the humanoid at ``fps``; the :class:`RetargetReport` goes in ``clip.meta["retarget"]``."""
    model = model or load_humanoid()
    src = bvh.resample(fps)
    if src.num_frames < 2:
        raise MotionFormatError(bvh.path, f"too short: {bvh.num_frames} frames give {src.num_frames} at {fps} fps (need >= 2)")
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
    heights, stance = _foot_contacts(model, pos.numpy(), rq.numpy(), fps)
    if stance.sum() >= 0.05 * len(stance):
        ground = float(np.median(heights[stance]))
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


def is_cmu(bvh: BvhMotion) -> bool:
    """Whether ``bvh`` looks like CMU database data: a file name with ``cmu`` or the database's
    ``SUBJECT_TRIAL`` numbering (``131_01.bvh``), or the cgspeed conversion's skeleton (LHipJoint, lowerback)."""
    stem = bvh.path.stem.lower()
    return "cmu" in stem or re.fullmatch(r"\d{2,3}_\d{2}", stem) is not None or {"LHipJoint", "lowerback"} <= set(bvh.joint_names)


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
