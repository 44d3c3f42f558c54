"""Reading any supported motion file: :func:`load_motion` dispatches on the extension to the project's ``.npz``
reader (:mod:`anyskill.motion.clip`), the poselib importer (:mod:`anyskill.motion.poselib`) or the BVH retargeter
(:mod:`anyskill.motion.retarget`)."""

from __future__ import annotations

from pathlib import Path

from anyskill.humanoid.model import HumanoidModel
from anyskill.motion.clip import MotionClip, MotionFormatError, load_npz


def load_motion(path: str | Path, model: HumanoidModel | None = None) -> MotionClip:
    """Load a motion file as a :class:`MotionClip`, dispatching on the extension.

    ``.npz``: the project's own format; ``.npy``: a poselib ``SkeletonMotion`` (ASE, CALM, AnySkill,
    IsaacGymEnvs), read without executing code; ``.bvh``: CMU-style BVH, retargeted to the humanoid.
    Any problem raises :class:`MotionFormatError` naming the file and the reason; files over the size, frame-count,
    duration or frame-rate limits (``MAX_*`` in :mod:`anyskill.motion.clip` and :mod:`anyskill.motion.bvh`) are refused.
    """
    path = Path(path)
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as e:  # e.g. a name too long for the file system
        raise MotionFormatError(path, f"not a usable file name ({e})") from None
    if not is_file:
        raise MotionFormatError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_npz(path, model)
    if suffix == ".npy":
        from anyskill.motion.poselib import load_poselib

        return load_poselib(path, model)
    if suffix == ".bvh":
        from anyskill.motion.retarget import load_bvh

        return load_bvh(path, model)
    raise MotionFormatError(path, f"unknown motion file extension {suffix!r}; expected .npz, .npy (poselib) or .bvh")
