"""Motion data: clips, importers (own .npz, poselib .npy, CMU BVH), keyframe authoring, the motion library.

:func:`load_motion` (:mod:`anyskill.motion.load`) reads any supported file; :class:`MotionLibrary`
(:mod:`anyskill.motion.library`) is imported on first use; :func:`~anyskill.motion.report.dataset_report` sums a
library up; :mod:`anyskill.motion.quality` checks and fixes single clips."""

from __future__ import annotations

from anyskill.motion.clip import MotionClip, MotionFormatError
from anyskill.motion.load import load_motion

__all__ = ["MotionClip", "MotionFormatError", "load_motion", "MotionLibrary"]


def __getattr__(name: str):
    if name == "MotionLibrary":
        from anyskill.motion.library import MotionLibrary

        return MotionLibrary
    raise AttributeError(name)
