"""Import poselib ``SkeletonMotion`` ``.npy`` files (ASE / CALM / AnySkill / IsaacGymEnvs).

Those files are numpy object arrays wrapping a pickled ``OrderedDict`` (local joint quaternions
xyzw, root translation, fps, skeleton tree). Pickles can execute code, so they are read with a
restricted unpickler that resolves only the handful of numpy/collections names such files use;
anything else raises :class:`MotionFormatError` before a single object is built.

Local joint rotations are converted to the humanoid's hinge angles: 3-DoF joints by an intrinsic
XYZ Euler decomposition (the composition of MuJoCo hinges declared x, y, z), choosing per frame the
branch and 2*pi wrap nearest the previous frame and inside the joint range; 1-DoF joints by the
twist about the hinge axis. :func:`conversion_report` measures what the conversion loses.
"""

from __future__ import annotations

import ast
import io
import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from anyskill.motion import rotations as rot
from anyskill.motion.clip import MotionClip, MotionFormatError
from anyskill.sim.model import HumanoidModel, load_humanoid

_MAGIC = b"\x93NUMPY"


try:  # numpy >= 2 moved the pickle helpers to numpy._core
    from numpy._core.multiarray import _reconstruct, scalar as _scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar as _scalar

_GIMBAL_SIN = math.sqrt(1.0 - 1e-6**2)  # |sin b| above this: |cos b| < 1e-6, x and z axes coincide


_ALLOWED = {
    ("collections", "OrderedDict"): OrderedDict,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise MotionFormatError(
                self._path, f"refusing to unpickle {module}.{name}: only numpy arrays and OrderedDicts are allowed in motion files"
            ) from None


def read_skeleton_motion(path: str | Path) -> dict:
    """Safely read the state dict of a poselib ``SkeletonMotion`` ``.npy`` file."""
    raw = Path(path).read_bytes()
    if not raw.startswith(_MAGIC):
        raise MotionFormatError(path, "not a .npy file (bad magic bytes)")
    try:
        major = raw[6]
        if major == 1:
            hlen = int.from_bytes(raw[8:10], "little")
            start = 10
        elif major in (2, 3):
            hlen = int.from_bytes(raw[8:12], "little")
            start = 12
        else:
            raise ValueError(f"unknown .npy version {major}")
        header = ast.literal_eval(raw[start : start + hlen].decode("latin1"))
        payload = raw[start + hlen :]
    except (ValueError, SyntaxError, IndexError) as e:
        raise MotionFormatError(path, f"malformed .npy header ({e})") from None
    if not isinstance(header, dict) or header.get("descr") != "|O":
        raise MotionFormatError(path, "a poselib motion is a pickled object array; this .npy holds plain numbers")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(payload), path).load()
    except MotionFormatError:
        raise
    except Exception as e:  # truncated or corrupted pickles raise many types
        raise MotionFormatError(path, f"corrupted or truncated pickle ({type(e).__name__}: {e})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise MotionFormatError(path, f"expected a SkeletonMotion state dict, found {type(obj).__name__}")
    return obj


def _array(state: dict, key: str, path) -> np.ndarray:
    try:
        value = state[key]
        arr = value["arr"] if isinstance(value, dict) else value
        return np.asarray(arr, dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise MotionFormatError(path, f"missing or malformed '{key}' ({e})") from None


@dataclass
class ConversionReport:
    """What converting local quaternions to hinge angles lost, for one clip."""

    name: str
    frames: int
    fk_error_max: float  # m, max over frames and bodies, before clamping to joint limits
    fk_error_mean: float  # m
    fk_error_clamped_max: float  # m, after clamping to joint limits (what the clip stores)
    limit_violations: dict[str, float]  # DoF name -> largest violation, rad (only violated DoFs)
    skeleton_offset_error: float  # m, max |file local_translation - MJCF offset|


def poselib_state_to_clip(state: dict, path: str | Path, model: HumanoidModel | None = None,
                          name: str | None = None) -> tuple[MotionClip, ConversionReport]:
    """Convert a SkeletonMotion state dict into a :class:`MotionClip` and a :class:`ConversionReport`."""
    model = model or load_humanoid()
    tree = state.get("skeleton_tree")
    if not isinstance(tree, dict):
        raise MotionFormatError(path, "missing 'skeleton_tree'")
    node_names = tuple(str(n) for n in tree.get("node_names", ()))
    if node_names != model.body_names:
        raise MotionFormatError(path, f"wrong skeleton: bodies {node_names} are not the humanoid's {model.body_names}")
    parents = _array(tree, "parent_indices", path).astype(int)
    if not np.array_equal(parents, model.parents):
        raise MotionFormatError(path, f"wrong skeleton: parent indices {parents.tolist()} differ from {model.parents.tolist()}")
    local_t = _array(tree, "local_translation", path)
    offset_err = float(np.abs(local_t[1:] - model.offsets[1:]).max())
    if offset_err > 0.02:
        raise MotionFormatError(path, f"wrong skeleton: bone offsets differ from the humanoid's by {offset_err:.3f} m")
    if state.get("is_local", True) is not True and not bool(state.get("is_local")):
        raise MotionFormatError(path, "only local-rotation SkeletonMotions (is_local=True) are supported")

    quats = _array(state, "rotation", path)
    root_pos = _array(state, "root_translation", path)
    if quats.ndim != 3 or quats.shape[1:] != (model.num_bodies, 4):
        raise MotionFormatError(path, f"'rotation' must be (T, {model.num_bodies}, 4), got {quats.shape}")
    if root_pos.shape != (quats.shape[0], 3):
        raise MotionFormatError(path, f"'root_translation' must be ({quats.shape[0]}, 3), got {root_pos.shape}")
    if not (np.all(np.isfinite(quats)) and np.all(np.isfinite(root_pos))):
        raise MotionFormatError(path, "rotations or translations contain NaN or infinite values")
    try:
        fps = float(state["fps"])
    except (KeyError, TypeError, ValueError):
        raise MotionFormatError(path, "missing or malformed 'fps'") from None

    local = rot.quat_normalize(rot.xyzw_to_wxyz(torch.from_numpy(quats)))  # (T, B, 4)
    dof_raw = local_rotations_to_dofs(local, model)
    from anyskill.motion.clip import skeleton_for

    sk = skeleton_for(model)
    root_t = torch.from_numpy(root_pos)
    ref_pos = _poselib_fk(root_t, local, torch.from_numpy(local_t), sk.parents)
    dof = fit_within_limits(sk, root_t, local[:, 0], dof_raw, ref_pos)

    clip = MotionClip(
        name=name or Path(path).stem,
        fps=fps,
        root_pos=root_pos,
        root_rot=local[:, 0].numpy(),
        dof_pos=dof,
        meta={"source": str(Path(path).name), "importer": "poselib"},
        model=model,
    )
    # FK of the file's own skeleton (its own offsets and local quaternions) is the ground truth.
    root_rot = local[:, 0]
    raw_pos, _ = sk.forward_kinematics(root_t, root_rot, torch.from_numpy(dof_raw))
    cl_pos, _ = sk.forward_kinematics(root_t, root_rot, torch.from_numpy(dof))
    err_raw = (raw_pos - ref_pos).norm(dim=-1)
    err_cl = (cl_pos - ref_pos).norm(dim=-1)
    over = np.maximum(dof_raw - model.dof_upper, model.dof_lower - dof_raw).max(axis=0)
    violations = {model.dof_names[i]: float(v) for i, v in enumerate(over) if v > 1e-6}
    report = ConversionReport(
        name=clip.name,
        frames=clip.num_frames,
        fk_error_max=float(err_raw.max()),
        fk_error_mean=float(err_raw.mean()),
        fk_error_clamped_max=float(err_cl.max()),
        limit_violations=violations,
        skeleton_offset_error=offset_err,
    )
    clip.meta["conversion"] = {
        "fk_error_max_m": report.fk_error_max,
        "fk_error_clamped_max_m": report.fk_error_clamped_max,
        "limit_violations_rad": violations,
    }
    return clip, report


def load_poselib(path: str | Path, model: HumanoidModel | None = None) -> MotionClip:
    """Load a poselib ``SkeletonMotion`` ``.npy`` as a :class:`MotionClip` (report in ``clip.meta``)."""
    return poselib_state_to_clip(read_skeleton_motion(path), path, model)[0]


def fit_within_limits(sk, root_pos: torch.Tensor, root_rot: torch.Tensor, dof_init: np.ndarray,
                      ref_pos: torch.Tensor, iters: int = 300, lr: float = 0.02) -> np.ndarray:
    """Hinge angles inside the joint limits whose FK best matches reference body positions.

    Frames inside the limits whose FK is exact (error < 1 mm) are returned unchanged. For the others
    (limits violated, or 1-DoF joints whose source rotation has a swing component), plain clamping or twist
    projection moves whole limbs; instead start from the clamped angles and minimise the squared
    body-position error (T, B, 3) by projected Adam steps. Returns (T, D) rad.
    """
    model = sk.model
    lo, hi = torch.as_tensor(model.dof_lower), torch.as_tensor(model.dof_upper)
    init = torch.from_numpy(dof_init)
    out = init.clamp(lo, hi)
    with torch.no_grad():
        pos, _ = sk.forward_kinematics(root_pos, root_rot, out)
    bad = (pos - ref_pos).norm(dim=-1).amax(dim=-1) > 1e-3
    if not bool(bad.any()):
        return out.numpy()
    x = out[bad].clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for _ in range(iters):
        pos, _ = sk.forward_kinematics(root_pos[bad], root_rot[bad], x)
        loss = ((pos - ref_pos[bad]) ** 2).sum(dim=(-1, -2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.copy_(x.clamp(lo, hi))
    out[bad] = x.detach()
    return out.numpy()


def _poselib_fk(root_pos, local, offsets, parents):
    pos, rots = [], []
    for b, p in enumerate(parents):
        if p < 0:
            pos.append(root_pos)
            rots.append(local[:, 0])
        else:
            pos.append(pos[p] + rot.quat_rotate(rots[p], offsets[b].expand_as(root_pos)))
            rots.append(rot.quat_mul(rots[p], local[:, b]))
    return torch.stack(pos, dim=1)


def local_rotations_to_dofs(local: torch.Tensor, model: HumanoidModel) -> np.ndarray:
    """(T, B, 4) local body rotations (wxyz) -> (T, D) hinge angles, rad, not yet clamped.

    3-DoF joints: intrinsic XYZ decomposition with per-frame branch/wrap continuity, preferring
    angles inside the joint range; at gimbal lock (|cos b| < 1e-6, where only a +- c is defined) the z angle
    is held at its previous value and x, y are solved exactly given it. 1-DoF joints: twist about the axis.
    """
    t = local.shape[0]
    dofs = np.zeros((t, model.num_dofs))
    for joint in model.joints:
        q = local[:, joint.body].double()
        idx = list(joint.dofs)
        if len(idx) == 1:
            axis = torch.as_tensor(model.dof_axis[idx[0]], dtype=q.dtype)
            dofs[:, idx[0]] = np.unwrap(rot.twist_angle(q, axis).numpy())
            continue
        if not np.allclose(model.dof_axis[idx], np.eye(3)):
            raise ValueError(f"joint {joint.name}: 3-DoF joints must be hinges about x, y, z in that order")
        lo, hi = model.dof_lower[idx], model.dof_upper[idx]
        mats = rot.quat_to_matrix(q).numpy()
        cands = rot.euler_xyz_candidates(q).numpy()  # (T, 2, 3)
        prev = np.clip(np.zeros(3), lo, hi)
        for f in range(t):
            m = mats[f]
            if abs(m[0, 2]) > _GIMBAL_SIN:
                options = [_solve_xy_given_z(m, prev[2])]
            else:
                options = list(cands[f])
            best, best_cost = None, math.inf
            for opt in options:
                sel, cost = _nearest_wrap(opt, prev, lo, hi)
                if cost < best_cost:
                    best, best_cost = sel, cost
            dofs[f, idx] = best
            prev = best
    return dofs


def _solve_xy_given_z(m: np.ndarray, c: float) -> np.ndarray:
    """Given R = Rx(a) Ry(b) Rz(c) and c, return exact (a, b, c)."""
    cc, sc = math.cos(c), math.sin(c)
    rz_inv = np.array([[cc, sc, 0.0], [-sc, cc, 0.0], [0.0, 0.0, 1.0]])
    n = m @ rz_inv  # = Rx(a) Ry(b)
    a = math.atan2(n[2, 1], n[1, 1])
    b = math.atan2(n[0, 2], n[0, 0])
    return np.array([a, b, c])


def _nearest_wrap(angles: np.ndarray, prev: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, float]:
    """Per angle, pick among angle + 2*pi*k the one with least (10 * range violation + distance to prev)."""
    out = np.empty(3)
    total = 0.0
    for i in range(3):
        best, best_cost = angles[i], math.inf
        for k in (-1, 0, 1):
            x = angles[i] + 2 * math.pi * k
            cost = 10.0 * max(lo[i] - x, x - hi[i], 0.0) + abs(x - prev[i])
            if cost < best_cost:
                best, best_cost = x, cost
        out[i] = best
        total += best_cost
    return out, total


def save_poselib(clip: MotionClip, path: str | Path) -> Path:
    """Write a clip as a poselib ``SkeletonMotion`` ``.npy`` (local quaternions xyzw), for ASE/CALM/AnySkill code.

    Global body velocities are finite differences of the FK positions (m/s); angular velocities are finite
    differences of the global body rotations (rad/s, world frame).
    """
    from anyskill.motion.clip import skeleton_for

    sk = skeleton_for(clip.model)
    dof = torch.from_numpy(clip.dof_pos)
    local = sk.local_rotations(dof)
    local[:, 0] = torch.from_numpy(clip.root_rot)
    body_pos, body_rot = sk.forward_kinematics(torch.from_numpy(clip.root_pos), torch.from_numpy(clip.root_rot), dof)
    vel = np.gradient(body_pos.numpy(), 1.0 / clip.fps, axis=0)
    dq = rot.quat_mul(body_rot[1:], rot.quat_conjugate(body_rot[:-1]))
    ang = (rot.quat_to_exp_map(dq) * clip.fps).numpy()
    ang = np.concatenate([ang, ang[-1:]], axis=0)

    def tensor(a: np.ndarray, dtype=np.float32) -> OrderedDict:
        a = np.ascontiguousarray(a, dtype=dtype)
        return OrderedDict(arr=a, context=OrderedDict(dtype=a.dtype.name))

    offsets = clip.model.offsets.copy()
    state = OrderedDict(
        rotation=tensor(rot.wxyz_to_xyzw(local).numpy()),
        root_translation=tensor(clip.root_pos),
        global_velocity=tensor(vel),
        global_angular_velocity=tensor(ang),
        skeleton_tree=OrderedDict(
            node_names=list(clip.model.body_names),
            parent_indices=tensor(clip.model.parents, np.int64),
            local_translation=tensor(offsets),
        ),
        is_local=True,
        fps=float(clip.fps),
        __name__="SkeletonMotion",
    )
    holder = np.empty((), dtype=object)
    holder[()] = state
    path = Path(path)
    np.save(path, holder, allow_pickle=True)
    return path
