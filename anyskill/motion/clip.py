"""`MotionClip`: one motion of the humanoid, and the project's own `.npz` motion format.

Format ``anyskill-motion`` version 1 (``.npz``, no pickles):

=================  ===========  =========================================================
key                shape/dtype  meaning
=================  ===========  =========================================================
format             str          ``"anyskill-motion"``
format_version     int          ``1``
name               str          clip name
fps                float        frames per second
root_pos           (T, 3) f8    root (pelvis) position, world frame, z up, m
root_rot           (T, 4) f8    root rotation, quaternion **wxyz**
dof_pos            (T, D) f8    hinge angles, rad, in the MJCF DoF order
dof_names          (D,) str     names of those hinges (checked against the humanoid on load)
meta               str          JSON object: source, licence, description, authored, ...
=================  ===========  =========================================================

Every motion reader (``.npz`` here, poselib ``.npy``, ``.bvh``) checks a file against the limits below before
allocating or looping over its contents, and reports any problem as one :class:`MotionFormatError` naming the
file. The limits are far above the bundled clips, and an error over a limit names it.
"""

from __future__ import annotations

import functools
import json
import lzma
import math
import numbers
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from anyskill.humanoid.model import HumanoidModel, load_humanoid
from anyskill.humanoid.skeleton import Skeleton

FORMAT = "anyskill-motion"
FORMAT_VERSION = 1

MAX_FILE_BYTES = 64 * 2**20
"""Largest motion file read, in bytes; for ``.npz`` also the most its entries may unpack to."""
MAX_FRAMES = 10_000
"""Most frames in a clip as loaded (a BVH recording after resampling to the clip's rate): 5.5 min at 30 fps. Loading
time grows with it: the poselib importer fits frames beyond the joint limits by 300 gradient steps each."""
MAX_DURATION_S = 600.0
"""Longest clip or recording, s: (frames - 1) / fps."""
MIN_FPS = 1.0
"""Lowest frame rate accepted, frames per second."""
MAX_FPS = 1000.0
"""Highest frame rate accepted, frames per second."""
_MAX_NPY_HEADER = 4096  # bytes; numpy writes 118-byte headers for these arrays


class MotionFormatError(ValueError):
    """A motion file could not be read: names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def describe(value: object, limit: int = 60) -> str:
    """A bounded description of a value read from a file, for error messages: arrays and containers by type and
    size (their repr can be huge or deeply nested), strings and numbers by a repr cut to ``limit`` characters."""
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, numbers.Integral) and not -(10**limit) < value < 10**limit:
        return f"an integer of {int(value).bit_length()} bits"
    if isinstance(value, (str, bytes)):
        text = repr(value[:limit]) + ("..." if len(value) > limit else "")
    elif isinstance(value, (numbers.Number, np.generic, np.dtype, type(None))):
        text = repr(value)
    else:
        return f"a {type(value).__name__}"
    return text if len(text) <= limit + 5 else text[:limit] + "..."


def check_file_size(path: Path) -> None:
    """Raise :class:`MotionFormatError` if ``path`` is larger than :data:`MAX_FILE_BYTES`."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise MotionFormatError(
            path, f"file is {size / 2**20:.0f} MiB, more than the limit MAX_FILE_BYTES = {MAX_FILE_BYTES // 2**20} "
                  "MiB; "
            "split the recording into shorter clips"
        )


def check_timing(path: str | Path, frames: int, fps: object) -> float:
    """``fps`` as a float, after checking its type, the frame-rate range, and ``frames`` and the duration against
    :data:`MAX_FRAMES` and :data:`MAX_DURATION_S`; raises :class:`MotionFormatError` naming ``path``."""
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, numbers.Real):
        raise MotionFormatError(path, f"fps must be a number, got {describe(fps)}")
    if not MIN_FPS <= fps <= MAX_FPS:  # type: ignore[operator]  # Real orders; also rejects NaN
        raise MotionFormatError(path, f"fps {describe(fps)} is outside the supported range [MIN_FPS, MAX_FPS] = "
                                      f"[{MIN_FPS:g}, {MAX_FPS:g}]")
    fps = float(fps)
    if frames > MAX_FRAMES:
        raise MotionFormatError(path, f"{frames} frames, more than the limit MAX_FRAMES = {MAX_FRAMES}; "
                                      "split the recording into shorter clips")
    if (frames - 1) / fps > MAX_DURATION_S:
        raise MotionFormatError(path, f"{(frames - 1) / fps:.0f} s long, more than the limit MAX_DURATION_S = "
                                      f"{MAX_DURATION_S:g} s; split the recording into shorter clips")
    return fps


@dataclass
class MotionClip:
    """A motion of the humanoid at a fixed frame rate.

    ``root_pos`` (T, 3) m, world frame z-up; ``root_rot`` (T, 4) wxyz; ``dof_pos`` (T, D) rad in the
    MJCF DoF order. ``meta`` carries provenance (source, licence, description, authored, ...).
    """

    name: str
    fps: float
    root_pos: np.ndarray
    root_rot: np.ndarray
    dof_pos: np.ndarray
    meta: dict = field(default_factory=dict)
    model: HumanoidModel = field(default_factory=load_humanoid, repr=False)

    def __post_init__(self) -> None:
        self.root_pos = np.asarray(self.root_pos, dtype=np.float64)
        self.root_rot = np.asarray(self.root_rot, dtype=np.float64)
        self.dof_pos = np.asarray(self.dof_pos, dtype=np.float64)
        self.validate(self.name)

    def validate(self, source: str | Path) -> None:
        """Raise :class:`MotionFormatError` naming ``source`` if shapes or values are wrong."""
        if isinstance(self.fps, (bool, np.bool_)) or not isinstance(self.fps, numbers.Real):
            raise MotionFormatError(source, f"fps must be a number, got {describe(self.fps)}")
        t = self.root_pos.shape[0] if self.root_pos.ndim == 2 else -1
        d = self.model.num_dofs
        if self.root_pos.shape != (t, 3) or t < 2:
            raise MotionFormatError(source, f"root_pos must be (T, 3) with T >= 2, got {self.root_pos.shape}")
        if self.root_rot.shape != (t, 4):
            raise MotionFormatError(source, f"root_rot must be ({t}, 4), got {self.root_rot.shape}")
        if self.dof_pos.shape != (t, d):
            raise MotionFormatError(source, f"dof_pos must be ({t}, {d}) for this humanoid, got {self.dof_pos.shape}")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise MotionFormatError(source, f"fps must be a positive number, got {self.fps}")
        for key in ("root_pos", "root_rot", "dof_pos"):
            if not np.all(np.isfinite(getattr(self, key))):
                raise MotionFormatError(source, f"{key} contains NaN or infinite values")
        norms = np.linalg.norm(self.root_rot, axis=-1)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            raise MotionFormatError(source, f"root_rot is not unit quaternions (norms "
                                            f"{norms.min():.3f}..{norms.max():.3f})")
        self.root_rot = self.root_rot / norms[:, None]

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        """Length in s: (T - 1) / fps."""
        return (self.num_frames - 1) / self.fps

    @property
    def dt(self) -> float:
        return 1.0 / self.fps

    def body_pos(self) -> np.ndarray:
        """(T, B, 3) m: world positions of the bodies by forward kinematics, body order of the model."""
        return self.body_states()[0]

    def body_states(self) -> tuple[np.ndarray, np.ndarray]:
        """World body positions (T, B, 3) m and rotations (T, B, 4) wxyz."""
        pos, rot = skeleton_for(self.model).forward_kinematics(
            torch.from_numpy(self.root_pos), torch.from_numpy(self.root_rot), torch.from_numpy(self.dof_pos)
        )
        return pos.numpy(), rot.numpy()

    def save(self, path: str | Path) -> Path:
        """Write the clip in the ``anyskill-motion`` v1 ``.npz`` format; returns the path."""
        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"{path}: MotionClip.save writes .npz files")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            format=np.array(FORMAT),
            format_version=np.array(FORMAT_VERSION),
            name=np.array(self.name),
            fps=np.array(float(self.fps)),
            root_pos=self.root_pos,
            root_rot=self.root_rot,
            dof_pos=self.dof_pos,
            dof_names=np.array(self.model.dof_names),
            meta=np.array(json.dumps(self.meta, sort_keys=True)),
        )
        return path

    def slice(self, start: int, stop: int, name: str | None = None) -> MotionClip:
        """Frames [start, stop) as a new clip."""
        return MotionClip(
            name=name or f"{self.name}[{start}:{stop}]",
            fps=self.fps,
            root_pos=self.root_pos[start:stop],
            root_rot=self.root_rot[start:stop],
            dof_pos=self.dof_pos[start:stop],
            meta=dict(self.meta),
            model=self.model,
        )


@functools.lru_cache(maxsize=8)
def skeleton_for(model: HumanoidModel) -> Skeleton:
    """The (cached) FK skeleton of a humanoid model."""
    return Skeleton(model)


def clip_from_file(path: str | Path, **fields) -> MotionClip:
    """A :class:`MotionClip` of ``fields`` read from ``path``: validation errors name the file, not the clip."""
    try:
        return MotionClip(**fields)
    except MotionFormatError as e:
        raise MotionFormatError(path, e.reason) from None


@dataclass(frozen=True)
class NpyHeader:
    """The header of a ``.npy`` array: dtype, memory order, shape, and where the data starts in the bytes."""

    dtype: np.dtype
    fortran_order: bool
    shape: tuple[int, ...]
    data_offset: int


_NPY_MAGIC = b"\x93NUMPY"
_NPY_ITEM = r"'(descr|fortran_order|shape)'\s*:\s*('[^']*'|True|False|\((?:\s*\d+\s*,)*(?:\s*\d+\s*)?\))"
_NPY_HEADER = re.compile(r"\{\s*" + r"\s*,\s*".join([_NPY_ITEM] * 3) + r"\s*,?\s*\}\s*")


def read_npy_header(raw: bytes, path: str | Path, what: str) -> NpyHeader:
    """Parse the header of the ``.npy`` bytes ``raw`` (``what``: how errors name the array).

    The header is matched against the three keys numpy writes, with plain literal values, instead of being
    evaluated as Python, so no header can exhaust memory or the stack; raises :class:`MotionFormatError`.
    """
    if not raw.startswith(_NPY_MAGIC):
        raise MotionFormatError(path, f"{what}: not a .npy file (bad magic bytes)")
    version = raw[6] if len(raw) > 6 else None
    if version not in (1, 2, 3):
        raise MotionFormatError(path, f"{what}: unknown .npy format version {version}")
    start = 10 if version == 1 else 12
    length = int.from_bytes(raw[8:start], "little")
    if length > _MAX_NPY_HEADER or len(raw) < start + length:
        raise MotionFormatError(path, f"{what}: malformed .npy header (length {length}, file {len(raw)} bytes)")
    text = raw[start : start + length].decode("utf-8" if version == 3 else "latin-1", errors="replace")
    match = _NPY_HEADER.fullmatch(text)
    fields = dict(zip(match.groups()[::2], match.groups()[1::2], strict=True)) if match else {}
    if len(fields) != 3:
        raise MotionFormatError(path, f"{what}: malformed .npy header {describe(text.strip())}")
    try:
        dtype = np.dtype(fields["descr"][1:-1])
    except (TypeError, ValueError):
        raise MotionFormatError(path, f"{what}: unknown dtype {describe(fields['descr'])} in the .npy header") from None
    shape = tuple(int(n) for n in re.findall(r"\d+", fields["shape"]))
    return NpyHeader(dtype, fields["fortran_order"] == "True", shape, start + length)


# entry -> (accepted dtype kinds: f float, i/u integer, U text; number of dimensions)
_NPZ_ENTRIES = {
    "format": ("U", 0), "format_version": ("iu", 0), "name": ("U", 0), "fps": ("fiu", 0), "root_pos": ("fiu", 2),
    "root_rot": ("fiu", 2), "dof_pos": ("fiu", 2), "dof_names": ("U", 1), "meta": ("U", 0),
}
_KIND_NAMES = {"U": "text", "iu": "an integer", "fiu": "numbers"}
# What reading a damaged zip archive raises: bad headers or CRCs, corrupt compressed data (zlib, lzma; bz2 raises
# OSError), truncation, unknown compression methods, encryption (RuntimeError), undecodable names (ValueError).
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError, RuntimeError,
               ValueError)


def _npz_entry(raw: bytes, key: str, path: Path) -> np.ndarray:
    """Entry ``key`` of an ``.npz`` from its ``.npy`` bytes, its header checked before any data is read."""
    kinds, ndim = _NPZ_ENTRIES[key]
    header = read_npy_header(raw, path, f"entry {key!r}")
    if header.dtype.kind not in kinds or header.dtype.itemsize == 0:
        raise MotionFormatError(path, f"entry {key!r} must hold {_KIND_NAMES[kinds]}, got dtype {header.dtype}")
    if len(header.shape) != ndim:
        raise MotionFormatError(path, f"entry {key!r} must have {ndim} dimensions, got shape {header.shape}")
    count = math.prod(header.shape)
    if count * header.dtype.itemsize != len(raw) - header.data_offset:
        raise MotionFormatError(
            path, f"entry {key!r} is corrupt: its header declares shape {header.shape} of {header.dtype} "
            f"({count * header.dtype.itemsize} bytes) but it holds {len(raw) - header.data_offset} bytes"
        )
    data = np.frombuffer(raw, header.dtype, count=count, offset=header.data_offset)
    return data.reshape(header.shape, order="F" if header.fortran_order else "C").copy()


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The entries of an ``.npz`` archive this format uses (others are not read), each checked by
    :func:`_npz_entry`; at most :data:`MAX_FILE_BYTES` are unpacked in all."""
    entries: dict[str, np.ndarray] = {}
    budget = MAX_FILE_BYTES
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                key = info.filename[: -len(".npy")]
                if not info.filename.endswith(".npy") or key not in _NPZ_ENTRIES:
                    continue
                if key in entries:
                    raise MotionFormatError(path, f"entry {key!r} appears twice in the archive")
                if info.file_size > budget:
                    raise MotionFormatError(
                        path, f"entries unpack to more than the limit MAX_FILE_BYTES = {MAX_FILE_BYTES // 2**20} MiB "
                        f"(entry {key!r}: {info.file_size} bytes)"
                    )
                budget -= info.file_size
                with archive.open(info) as member:
                    entries[key] = _npz_entry(member.read(info.file_size), key, path)
    except MotionFormatError:
        raise
    except _ZIP_ERRORS as e:
        raise MotionFormatError(path, f"not a readable .npz archive ({type(e).__name__}: {e})") from None
    return entries


def load_npz(path: str | Path, model: HumanoidModel | None = None) -> MotionClip:
    """Read an ``anyskill-motion`` ``.npz`` file; any problem raises :class:`MotionFormatError`."""
    path = Path(path)
    model = model or load_humanoid()
    check_file_size(path)
    data = _read_npz(path)
    if "format" not in data or str(data["format"]) != FORMAT:
        raise MotionFormatError(path, f"not an {FORMAT} file (missing or wrong 'format' entry)")
    version = int(data["format_version"]) if "format_version" in data else None
    if version != FORMAT_VERSION:
        raise MotionFormatError(path, f"format_version {version} is not supported (this library reads "
                                      f"{FORMAT_VERSION})")
    missing = [k for k in ("name", "fps", "root_pos", "root_rot", "dof_pos", "dof_names") if k not in data]
    if missing:
        raise MotionFormatError(path, f"missing entries {missing}")
    names = tuple(str(n) for n in data["dof_names"])
    if names != model.dof_names:
        got = ", ".join(describe(n, 30) for n in names[:40]) + (", ..." if len(names) > 40 else "")
        raise MotionFormatError(path, f"wrong skeleton: DoFs ({got}) do not match the humanoid's {model.dof_names}")
    try:
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
    except (json.JSONDecodeError, RecursionError) as e:  # json raises RecursionError on very deep nesting
        raise MotionFormatError(path, f"entry 'meta' is not valid JSON ({type(e).__name__}: {str(e)[:80]})") from None
    if not isinstance(meta, dict):
        raise MotionFormatError(path, f"entry 'meta' must be a JSON object, got {type(meta).__name__}")
    return clip_from_file(
        path,
        name=str(data["name"]),
        fps=check_timing(path, data["root_pos"].shape[0], data["fps"].item()),
        root_pos=data["root_pos"],
        root_rot=data["root_rot"],
        dof_pos=data["dof_pos"],
        meta=meta,
        model=model,
    )
