"""Bundled motion data: ``motions/*.npz`` clips and the ``motions.yaml`` manifest.

Sources (see ``motions/ACKNOWLEDGEMENT.txt`` and ``motions/LICENSE-BSD-3.txt``): six CMU-derived clips released
under BSD-3 by NVIDIA, two CMU BVH recordings retargeted by this project, and gesture clips authored by this project
with :mod:`anyskill.motion.author`. ``anyskill build-data`` regenerates everything from the original files.
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
MOTIONS_DIR = DATA_DIR / "motions"
MANIFEST = DATA_DIR / "motions.yaml"


def default_library(device: str = "cpu"):
    """The bundled :class:`~anyskill.motion.library.MotionLibrary`."""
    from anyskill.motion.library import MotionLibrary

    return MotionLibrary.from_manifest(MANIFEST, device=device)
