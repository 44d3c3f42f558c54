"""Low-level controller (CALM, paper §3.1): networks, losses, rl-games agent, registration, inference."""

from anyskill.llc.controller import LowLevelController, load_llc
from anyskill.llc.registry import calm_config, register_calm

__all__ = ["LowLevelController", "calm_config", "load_llc", "register_calm"]
