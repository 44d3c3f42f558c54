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

import io
import math
import pickle
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.motion.clip import (
    MAX_FILE_BYTES,
    MAX_FRAMES,
    MotionClip,
    MotionFormatError,
    check_file_size,
    check_timing,
    clip_from_file,
    describe,
    read_npy_header,
    skeleton_for,
)

try:  # numpy >= 2 moved the pickle helpers to numpy._core
    from numpy._core.multiarray import _reconstruct
    from numpy._core.multiarray import scalar as _scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    from numpy.core.multiarray import scalar as _scalar  # type: ignore[no-redef]

_GIMBAL_SIN = math.sqrt(1.0 - 1e-6**2)  # |sin b| above this: |cos b| < 1e-6, x and z axes coincide


class _Refused(pickle.UnpicklingError):
    """The pickle asks for something a SkeletonMotion never holds; the message says what."""


def _plain_dtype(dtype: object) -> bool:
    """Whether ``dtype`` is one a SkeletonMotion pickle uses: numbers, booleans or objects, no fields or sub-arrays."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biufO" and dtype.fields is None and dtype.subdtype is None


class _NdarrayName:
    """What the pickle name ``numpy.ndarray`` resolves to: accepted by :meth:`_RestrictedUnpickler.reconstruct`; a
    call is refused (calling ``ndarray`` could allocate, and for object arrays fill, an array of any size)."""

    __slots__ = ()

    def __call__(self, *args: object) -> None:
        raise _Refused("a direct call of numpy.ndarray (numpy pickles arrays with _reconstruct)")


_NDARRAY = _NdarrayName()


class _CheckedArray(np.ndarray):
    """The arrays a motion pickle builds. Their state is checked before numpy uses it: numpy trusts it, and an object
    array given a list shorter than its size reads memory it does not own."""

    def __setstate__(self, state: object) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused(f"malformed array state {describe(state)}")
        _, shape, dtype, _, data = state
        sizes_ok = isinstance(shape, tuple) and all(isinstance(n, int) and n >= 0 for n in shape)
        if not sizes_ok or not _plain_dtype(dtype):
            raise _Refused(f"an array of shape {describe(shape)} and dtype {describe(dtype)}: only arrays of numbers "
                           "or objects are allowed")
        size = math.prod(shape)
        if size * dtype.itemsize > MAX_FILE_BYTES:
            raise _Refused(f"an array of shape {shape} and dtype {dtype} is larger than the file size limit "
                           f"MAX_FILE_BYTES = {MAX_FILE_BYTES // 2**20} MiB")
        if dtype.hasobject:
            consistent = isinstance(data, list) and len(data) == size
        else:
            consistent = isinstance(data, bytes) and len(data) == size * dtype.itemsize
        if not consistent:
            raise _Refused(f"an array of shape {shape} and dtype {dtype} whose data do not match them")
        super().__setstate__(state)


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the names a poselib pickle uses, each to a checked stand-in; any other name is refused.

    Stand-ins are bound methods or immutable objects, so that a pickle cannot alter them for later loads.
    """

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("numpy", "ndarray"):
            return _NDARRAY
        if (module, name) == ("numpy", "dtype"):
            return self.dtype
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return self.reconstruct if name == "_reconstruct" else self.scalar
        raise _Refused(f"{module}.{name}: only numpy arrays and OrderedDicts are allowed in motion files")

    def reconstruct(self, cls: object, shape: object, typecode: object) -> np.ndarray:
        """numpy's ``_reconstruct``, for the empty array that numpy's pickles then fill from their state."""
        if (cls is not _NDARRAY or shape != (0,) or not isinstance(typecode, (bytes, str))
                or typecode not in (b"b", "b")):
            raise _Refused("an array not made as numpy pickles arrays (an empty array, then filled from its state)")
        return cast(np.ndarray, _reconstruct(_CheckedArray, (0,), typecode))

    def dtype(self, spec: object, align: object = False, copy: object = True) -> np.dtype:
        """A fresh numpy dtype of numbers, booleans or objects (always a copy: numpy's own may not be altered)."""
        try:
            dtype = np.dtype(spec, bool(align), True) if isinstance(spec, str) and len(spec) <= 8 else None
        except (TypeError, ValueError):  # not a dtype numpy knows
            dtype = None
        if dtype is None or not _plain_dtype(dtype):
            raise _Refused(f"dtype {describe(spec)}: only numbers, booleans and objects are allowed")
        return dtype

    def scalar(self, dtype: object, data: object) -> np.generic:
        """A numpy number or boolean from its bytes."""
        if not (isinstance(dtype, np.dtype) and _plain_dtype(dtype) and not dtype.hasobject
                and isinstance(data, bytes) and len(data) == dtype.itemsize):
            raise _Refused(f"a numpy scalar of dtype {describe(dtype)} from {describe(data)}")
        return cast(np.generic, _scalar(dtype, data))


def _plain_arrays(state: dict) -> dict:
    """``state`` with the arrays in its dicts and lists turned into plain ndarray views (walked iteratively: a pickle
    can nest containers deeply and share them)."""
    todo: list[dict | list] = [state]
    seen: set[int] = set()
    while todo:
        container = todo.pop()
        if id(container) in seen:
            continue
        seen.add(id(container))
        for key, value in list(container.items() if isinstance(container, dict) else enumerate(container)):
            if isinstance(value, _CheckedArray):
                container[key] = value.view(np.ndarray)
            elif isinstance(value, (dict, list)):
                todo.append(value)
    return state


def read_skeleton_motion(path: str | Path) -> dict:
    """Safely read the state dict of a poselib ``SkeletonMotion`` ``.npy`` file."""
    path = Path(path)
    check_file_size(path)
    raw = path.read_bytes()
    header = read_npy_header(raw, path, "poselib motion")
    if header.dtype.kind != "O":
        raise MotionFormatError(path, "a poselib motion is a pickled object array; this .npy holds plain numbers")
    if header.shape != ():
        raise MotionFormatError(path, f"a poselib motion is a single pickled object; this .npy holds an array of shape "
                                      f"{header.shape}")
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw[header.data_offset :])).load()
    except _Refused as e:
        raise MotionFormatError(path, f"refusing to unpickle {e}") from None
    except Exception as e:  # truncated or corrupted pickles raise many types
        raise MotionFormatError(path, f"corrupted or truncated pickle ({type(e).__name__}: {str(e)[:200]})") from None
    if isinstance(obj, np.ndarray) and obj.shape == () and obj.dtype.kind == "O" and obj.dtype.fields is None:
        obj = obj.item()
    if not isinstance(obj, dict):
        raise MotionFormatError(path, f"expected a SkeletonMotion state dict, found {describe(obj)}")
    return _plain_arrays(obj)


def _array(container: dict, key: str, path: str | Path, shape: tuple[int | None, ...]) -> np.ndarray:
    """``container[key]`` (an array, or poselib's ``{'arr': array, ...}``) as float64, once its type, dtype and
    ``shape`` (None: a frame count, at most :data:`MAX_FRAMES`) are checked; all values must be finite."""
    value = container.get(key)
    if isinstance(value, dict):
        value = value.get("arr")
    if not (isinstance(value, np.ndarray) and _plain_dtype(value.dtype) and value.dtype.kind in "iuf"):
        raise MotionFormatError(path, f"missing or malformed '{key}': expected an array of numbers, got "
                                      f"{describe(value)}")
    if value.ndim != len(shape) or any(n is not None and n != m for n, m in zip(shape, value.shape, strict=True)):
        want = ", ".join("T" if n is None else str(n) for n in shape)
        raise MotionFormatError(path, f"'{key}' must have shape ({want}), got {value.shape}")
    frames = max((m for n, m in zip(shape, value.shape, strict=True) if n is None), default=0)
    if frames > MAX_FRAMES:
        raise MotionFormatError(path, f"'{key}' has {frames} frames, more than the limit MAX_FRAMES = {MAX_FRAMES}; "
                                      "split the recording into shorter clips")
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise MotionFormatError(path, f"'{key}' contains NaN or infinite values")
    return arr


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
    b = model.num_bodies
    tree = state.get("skeleton_tree")
    if not isinstance(tree, dict):
        raise MotionFormatError(path, f"missing or malformed 'skeleton_tree': expected a dict, got {describe(tree)}")
    names = tree.get("node_names")
    if not (isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names)):
        raise MotionFormatError(path, f"'node_names' must be a list of body names, got {describe(names)}")
    if tuple(names) != model.body_names:
        got = ", ".join(describe(n, 30) for n in names[:40]) + (", ..." if len(names) > 40 else "")
        raise MotionFormatError(path, f"wrong skeleton: bodies ({got}) are not the humanoid's {model.body_names}")
    parents = _array(tree, "parent_indices", path, (b,))
    if not np.array_equal(parents, model.parents):
        raise MotionFormatError(path, f"wrong skeleton: parent indices {parents.tolist()} differ from "
                                      f"{model.parents.tolist()}")
    local_t = _array(tree, "local_translation", path, (b, 3))
    offset_err = float(np.abs(local_t[1:] - model.offsets[1:]).max())
    if offset_err > 0.02:
        raise MotionFormatError(path, f"wrong skeleton: bone offsets differ from the humanoid's by {offset_err:.3f} m")
    is_local = state.get("is_local", True)
    if isinstance(is_local, np.ndarray) and is_local.shape == () and _plain_dtype(is_local.dtype):
        is_local = is_local.item()
    if not isinstance(is_local, (bool, np.bool_, int, np.integer)):
        raise MotionFormatError(path, f"'is_local' must be a boolean, got {describe(is_local)}")
    if not is_local:
        raise MotionFormatError(path, "only local-rotation SkeletonMotions (is_local=True) are supported")

    quats = _array(state, "rotation", path, (None, b, 4))
    if quats.shape[0] < 2:
        raise MotionFormatError(path, f"'rotation' has {quats.shape[0]} frames; a clip needs at least 2")
    root_pos = _array(state, "root_translation", path, (quats.shape[0], 3))
    fps = state.get("fps")
    if isinstance(fps, np.ndarray) and fps.shape == () and _plain_dtype(fps.dtype) and fps.dtype.kind in "iuf":
        fps = fps.item()  # some poselib files store fps as a 0-d int32 array
    fps = check_timing(path, quats.shape[0], fps)
    zero = np.argwhere(np.linalg.norm(quats, axis=-1) < 1e-6)
    if len(zero):
        raise MotionFormatError(path, f"'rotation' holds zero-length quaternions (first at frame {zero[0][0]}, body "
                                      f"{model.body_names[zero[0][1]]})")

    local = rot.quat_normalize(rot.xyzw_to_wxyz(torch.from_numpy(quats)))  # (T, B, 4)
    dof_raw = local_rotations_to_dofs(local, model)
    sk = skeleton_for(model)
    root_t = torch.from_numpy(root_pos)
    ref_pos = _poselib_fk(root_t, local, torch.from_numpy(local_t), sk.parents)
    dof = fit_within_limits(sk, root_t, local[:, 0], dof_raw, ref_pos)

    clip = clip_from_file(
        path,
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
            prev = cast(np.ndarray, best)
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
