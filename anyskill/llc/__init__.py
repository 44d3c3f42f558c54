"""The low-level controller: the interface every route trains (encoder E(window) -> unit z, π_L(a | s, z)) and what
the routes share: :func:`load_llc` for any route's checkpoint, evaluation (``evaluate``, ``skills``,
``latent_checks``), the reference motions (``motions``), network pieces (``nets``), a shipped controller's numbers
and model card (``card``, ``anyskill ship-llc``) and the shipped file (``shipped``). One subpackage per training
route, each with one entry point:

* :mod:`anyskill.llc.calm` — CALM (paper §3.1), adversarial imitation: :func:`anyskill.llc.calm.train_llc`;
* :mod:`anyskill.llc.tracking` — a PD tracker by PPO, then DAgger distillation:
  :func:`anyskill.llc.tracking.train_tracking_route`.
"""

from anyskill.llc.calm.registry import calm_config, register_calm
from anyskill.llc.controller import LowLevelController, load_llc

__all__ = ["LowLevelController", "calm_config", "load_llc", "register_calm"]
