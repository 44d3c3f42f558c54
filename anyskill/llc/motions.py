"""The reference motions every training route learns from: a manifest read into a :class:`MotionLibrary`."""

from __future__ import annotations

from pathlib import Path

from anyskill.config.llc import MOTION_WEIGHTS


def load_motions(motions: str | Path | None = None, device: str = "cpu", motion_weights: str = "manifest"):
    """The :class:`MotionLibrary` of a manifest (default: the bundled one) and the manifest's path; ``motion_weights``
    "uniform" replaces the manifest's weights by equal ones."""
    from anyskill.data import MANIFEST
    from anyskill.motion.library import MotionLibrary

    if motion_weights not in MOTION_WEIGHTS:
        raise ValueError(f"motion_weights must be one of {MOTION_WEIGHTS}, got {motion_weights!r}")
    path = Path(motions) if motions is not None else MANIFEST
    lib = MotionLibrary.from_manifest(path, device=device)
    if motion_weights == "uniform":
        lib = MotionLibrary(lib.clips, None, lib.categories, lib.descriptions, device=device)
    return lib, path
