"""AnySkill companion: open-vocabulary physical skills for a simulated humanoid (CVPR 2024), on MuJoCo.

Packages in layers, each importing only from those below it (docs/architecture.md): ``humanoid`` (the MJCF
humanoid, rotations, FK, observation functions) and ``provenance`` (how results were made) -> ``config`` (every
settings class, the scale profiles) -> ``motion`` (clips, importers, motion library) and ``text`` (prompt
enhancement, prompt sets) -> ``sim`` (MuJoCo / MuJoCo Warp backends, the humanoid env) and ``data`` (bundled clips)
-> ``reward`` (CLIP and its weights registry, Eq. 3, early termination, state projection) and ``rl`` (rl-games
adapters, training runner) -> ``llc`` (the low-level interface and what its routes share; one subpackage per
training route: ``calm``, ``tracking``) -> ``hlc`` (high-level policy) -> ``domain`` (the domain text–image model
of this humanoid, not CLIP) -> ``eval`` (rollout metrics, the human-rating protocol) -> ``viz`` (figures) ->
``reproduce`` (the notebooks) -> ``cli`` (the ``anyskill`` command).
"""

__version__ = "0.1.0"
