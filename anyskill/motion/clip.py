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
"""

from __future__ import annotations

import functools
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from anyskill.motion.skeleton import Skeleton
from anyskill.sim.model import HumanoidModel, load_humanoid

FORMAT = "anyskill-motion"
FORMAT_VERSION = 1


class MotionFormatError(ValueError):
    """A motion file could not be read: names the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


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
            raise MotionFormatError(source, f"root_rot is not unit quaternions (norms {norms.min():.3f}..{norms.max():.3f})")
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

    def slice(self, start: int, stop: int, name: str | None = None) -> "MotionClip":
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


def load_npz(path: str | Path, model: HumanoidModel | None = None) -> MotionClip:
    """Read an ``anyskill-motion`` ``.npz`` file."""
    model = model or load_humanoid()
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise MotionFormatError(path, f"not a readable .npz archive ({e})") from None
    if str(data.get("format", "")) != FORMAT:
        raise MotionFormatError(path, f"not an {FORMAT} file (missing or wrong 'format' entry)")
    version = int(data.get("format_version", -1))
    if version != FORMAT_VERSION:
        raise MotionFormatError(path, f"format_version {version} is not supported (this library reads {FORMAT_VERSION})")
    missing = [k for k in ("name", "fps", "root_pos", "root_rot", "dof_pos", "dof_names") if k not in data]
    if missing:
        raise MotionFormatError(path, f"missing entries {missing}")
    names = tuple(str(n) for n in data["dof_names"])
    if names != model.dof_names:
        raise MotionFormatError(path, f"wrong skeleton: DoFs {names} do not match the humanoid's {model.dof_names}")
    meta = json.loads(str(data["meta"])) if "meta" in data else {}
    try:
        return MotionClip(
            name=str(data["name"]),
            fps=float(data["fps"]),
            root_pos=data["root_pos"],
            root_rot=data["root_rot"],
            dof_pos=data["dof_pos"],
            meta=meta,
            model=model,
        )
    except MotionFormatError as e:
        raise MotionFormatError(path, e.reason) from None
