"""Typed settings and the named scale profiles (``smoke | laptop | paper``), read by training, the CLI, the notebooks
and :mod:`anyskill.reproduce`; the rl-games configs are generated from them.

* :mod:`anyskill.config.ppo` — :class:`PPOSettings`, shared by both policies;
* :mod:`anyskill.config.llc` — the LLC's env (:class:`LLCEnvSettings`), networks (:class:`CALMNetworkConfig`) and
  agent (:class:`CALMSettings`);
* :mod:`anyskill.config.tracking` — the tracking route: task (:class:`TrackingConfig`), tracker PPO
  (:class:`TrackerPPOConfig`), distillation (:class:`DistillConfig`), sizes per scale (:func:`route_profile`);
* :mod:`anyskill.config.hlc` — π_H's network (:class:`HLCNetworkSettings`);
* :mod:`anyskill.config.profiles` — :func:`profile` and :data:`SCALES`.
"""

from anyskill.config.hlc import HLCNetworkSettings
from anyskill.config.llc import CALMNetworkConfig, CALMSettings, LLCEnvSettings
from anyskill.config.ppo import PPOSettings
from anyskill.config.profiles import SCALES, HLCProfile, LLCProfile, NotebookSizes, ScaleProfile, check_scale, profile
from anyskill.config.tracking import DistillConfig, RouteProfile, TrackerPPOConfig, TrackingConfig, route_profile

__all__ = [
    "CALMNetworkConfig", "CALMSettings", "HLCNetworkSettings", "HLCProfile", "LLCEnvSettings", "LLCProfile",
    "NotebookSizes", "PPOSettings", "SCALES", "ScaleProfile", "check_scale", "profile", "DistillConfig", "RouteProfile",
    "TrackerPPOConfig", "TrackingConfig", "route_profile",
]
