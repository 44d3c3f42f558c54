"""CMU-style BVH motion capture: parsing, the source skeleton's own FK, and naming its joints.

:func:`parse_bvh` reads any BVH (HIERARCHY / MOTION, ``ROOT`` / ``JOINT`` / ``End Site``, any channel
order per joint) into a :class:`BvhMotion` holding the source skeleton and per-frame global joint
positions in the file's own units and axes. Euler channels compose in the listed order as intrinsic
rotations: ``CHANNELS 3 Zrotation Xrotation Yrotation`` means R = Rz(z) Rx(x) Ry(y), so the last
listed axis is applied to the child offsets first. :func:`find_joints` maps CMU-like joint names (cgspeed,
MotionBuilder-friendly and other common conversions) to the roles the retargeter needs (hips, knees, ...).

Retargeting to the humanoid: :mod:`anyskill.motion.retarget` (:func:`~anyskill.motion.retarget.load_bvh`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.motion.clip import (
    MAX_DURATION_S,
    MAX_FPS,
    MAX_FRAMES,
    MIN_FPS,
    MotionFormatError,
    check_file_size,
    describe,
)

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
        return np.array([len(c) == 0 and n.endswith("_end")
                         for n, c in zip(self.joint_names, self.channels, strict=True)])

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
                self.path, f"at {fps:g} fps the motion has {n_out} frames of {len(self.parents)} joints, over the "
                           "limit "
                f"MAX_FRAMES = {MAX_FRAMES} or MAX_JOINT_FRAMES = {MAX_JOINT_FRAMES}; split the recording into "
                "shorter clips"
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
        raise MotionFormatError(path, "missing MOTION section after the HIERARCHY (truncated or not a complete BVH "
                                      "file)")
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
            raise MotionFormatError(path, f"HIERARCHY ends early while reading {what} (truncated file or unbalanced "
                                          "braces)")
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
                raise MotionFormatError(path, f"CHANNELS count {n:g} of {where} must be a whole number from 0 to "
                                              f"{len(_CHANNELS)}")
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
        raise MotionFormatError(path, f"unexpected {describe(tokens[pos])} after the root joint; only one ROOT is "
                                      "supported")
    return names, parents, offsets, channels


def _parse_motion(lines: list[str], first_line_no: int, channels: list[list[str]],
                  path: Path) -> tuple[float, np.ndarray]:
    """Lines after MOTION -> (frame time s, (T, C) channel values), for the joints' ``channels``."""
    numbered = [(first_line_no + i, line) for i, line in enumerate(lines) if line.strip()]
    header: dict[str, str] = {}
    for key in ("frames:", "frame time:"):
        if not numbered or not numbered[0][1].strip().lower().startswith(key):
            raise MotionFormatError(path, f"MOTION section must start with 'Frames:' and 'Frame Time:' lines (missing "
                                          f"{key!r})")
        header[key] = numbered.pop(0)[1].strip()[len(key):].strip()
    try:
        n_frames = int(header["frames:"])
        frame_time = float(header["frame time:"])
    except ValueError:
        raise MotionFormatError(path, f"malformed 'Frames:' / 'Frame Time:' values "
                                      f"{[describe(v) for v in header.values()]}") from None
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
        raise MotionFormatError(path, f"{n_frames} frames of {len(channels)} joints, more than the limit "
                                      "MAX_JOINT_FRAMES "
                                      f"= {MAX_JOINT_FRAMES} joint-frames; split the recording into shorter clips")
    if len(numbered) < n_frames:
        raise MotionFormatError(path, f"truncated file: the header declares {n_frames} frames but only {len(numbered)} "
                                      "follow")
    if len(numbered) > n_frames:
        raise MotionFormatError(path, f"the header declares {n_frames} frames but {len(numbered)} lines of values "
                                      "follow")
    num_channels = sum(len(c) for c in channels)
    rows = []
    for line_no, line in numbered:
        toks = line.split()
        if len(toks) != num_channels:
            raise MotionFormatError(
                path, f"line {line_no}: {len(toks)} values, but the HIERARCHY declares {num_channels} channels per "
                      "frame"
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
            "LeftForeArm/LeftElbow, LeftHand/LeftWrist and the right side); joints found: "
            f"{', '.join(bvh.joint_names)}",
        )
    children = [[c for c, p in enumerate(bvh.parents) if p == j] for j in range(len(bvh.parents))]
    rest = bvh.rest_positions()
    for side in ("left", "right"):
        ankle = found[f"{side}_ankle"]
        if f"{side}_toe" not in found or bvh.parents[found[f"{side}_toe"]] != ankle:
            # No toe joint: the ankle's child (joint or End Site) farthest from it marks the toes.
            if not children[ankle]:
                raise MotionFormatError(bvh.path, f"joint {bvh.joint_names[ankle]!r} (the {side} ankle) has no child "
                                                  "marking the toes")
            found[f"{side}_toe"] = max(children[ankle], key=lambda c: np.linalg.norm(rest[c] - rest[ankle]))
    head = found["head"]
    found["head_top"] = (max(children[head], key=lambda c: np.linalg.norm(rest[c] - rest[head])) if children[head]
                         else head)
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
            bvh.path, "no spine joint between the hips and the neck (need one, e.g. Spine or Chest, to orient pelvis "
                      "and torso)"
        )
    return min(usable, key=lambda c: abs(np.linalg.norm(rest[c] - hip_c) / span - fraction))


def is_cmu(bvh: BvhMotion) -> bool:
    """Whether ``bvh`` looks like CMU database data: a file name with ``cmu`` or the database's
    ``SUBJECT_TRIAL`` numbering (``131_01.bvh``), or the cgspeed conversion's skeleton (LHipJoint, lowerback)."""
    stem = bvh.path.stem.lower()
    return ("cmu" in stem or re.fullmatch(r"\d{2,3}_\d{2}", stem) is not None
            or {"LHipJoint", "lowerback"} <= set(bvh.joint_names))
