"""AnySkill companion: open-vocabulary physical skills for a simulated humanoid (CVPR 2024), on MuJoCo.

Packages follow the paper's data flow: ``motion`` (clips, motion library) -> ``sim`` (humanoid env on a MuJoCo or
MuJoCo Warp backend) -> ``llc`` (CALM low-level controller) -> ``hlc`` (high-level policy) with ``reward`` (CLIP,
Eq. 3, early termination, state projection); ``viz`` draws, ``provenance`` records how results were made.
"""

__version__ = "0.1.0"
