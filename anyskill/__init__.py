"""AnySkill companion: open-vocabulary physical skills for a simulated humanoid (CVPR 2024), on MuJoCo.

Packages in layers, each importing only from those below it (docs/architecture.md): ``humanoid`` (the MJCF
humanoid, rotations, FK, observation functions) -> ``config`` (settings, scale profiles) -> ``motion`` (clips,
importers, motion library) -> ``sim`` (MuJoCo / MuJoCo Warp backends, the humanoid env) and ``data`` (bundled
clips) -> ``reward`` (CLIP, Eq. 3, early termination, state projection) and ``rl`` (rl-games adapters, training
runner) -> ``llc`` (CALM low-level controller) -> ``hlc`` (high-level policy) -> ``eval`` (rollout metrics, the
human-rating protocol) -> ``viz`` (figures) -> ``cli``;
``provenance`` records how results were made.
"""

__version__ = "0.1.0"
