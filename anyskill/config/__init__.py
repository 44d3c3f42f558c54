"""Typed settings and the named scale profiles (``smoke | laptop | paper``), read by training, the CLI, the notebooks
and :mod:`anyskill.reproduce`; the rl-games configs are generated from them.

* :mod:`anyskill.config.ppo` — :class:`PPOSettings`, shared by both policies;
* :mod:`anyskill.config.llc` — the LLC's env (:class:`LLCEnvSettings`), networks (:class:`CALMNetworkConfig`),
  agent (:class:`CALMSettings`) and latent prior (:class:`LatentPriorSettings`);
* :mod:`anyskill.config.tracking` — the tracking route: task (:class:`TrackingConfig`), tracker PPO
  (:class:`TrackerPPOConfig`), the model-based tracker (:class:`ModelBasedConfig`), distillation
  (:class:`DistillConfig`), the latent fine-tune (:class:`LatentFinetuneConfig`), sizes per scale
  (:func:`route_profile`);
* :mod:`anyskill.config.hlc` — π_H's network (:class:`HLCNetworkSettings`), its environment (:class:`HLCEnvConfig`)
  and the state projection's calibration per scale (:class:`CalibrationSizes`, :data:`CALIBRATION_SIZES`);
* :mod:`anyskill.config.reward` — Eq. 3 (:class:`RewardConfig`) and early termination (:class:`EarlyTerminationConfig`);
* :mod:`anyskill.config.domain` — the domain text–image model: towers (:class:`DomainModelConfig`), training
  (:class:`DomainTrainSettings`), the end-to-end check (:class:`E2ESettings`);
* :mod:`anyskill.config.llm` — the LLM text enhancer (:class:`LLMSettings`, the ``ANYSKILL_LLM_*`` variables);
* :mod:`anyskill.config.sim` — the simulated humanoid task (:class:`EnvConfig`);
* :mod:`anyskill.config.eval` — the kinematic CEM baseline (:class:`KinematicSettings`);
* :mod:`anyskill.config.profiles` — :func:`profile` and :data:`SCALES`.

Every settings class of the library is defined here, once (``tests/test_architecture.py`` checks it; the
physics env's ``EnvConfig`` in :mod:`anyskill.sim.env` is the one exception still to move); the modules that use them
import them from here. This package imports nothing above it.
"""

from anyskill.config.domain import DomainModelConfig, DomainTrainSettings, E2ESettings
from anyskill.config.eval import KinematicSettings
from anyskill.config.hlc import CALIBRATION_SIZES, CalibrationSizes, HLCEnvConfig, HLCNetworkSettings
from anyskill.config.llc import CALMNetworkConfig, CALMSettings, LatentPriorSettings, LLCEnvSettings
from anyskill.config.llm import LLMSettings
from anyskill.config.ppo import PPOSettings
from anyskill.config.profiles import SCALES, HLCProfile, LLCProfile, NotebookSizes, ScaleProfile, check_scale, profile
from anyskill.config.reward import EarlyTerminationConfig, RewardConfig
from anyskill.config.sim import STATE_INITS, EnvConfig
from anyskill.config.tracking import (
    DistillConfig,
    LatentFinetuneConfig,
    ModelBasedConfig,
    RouteProfile,
    TrackerPPOConfig,
    TrackingConfig,
    route_profile,
)

__all__ = [
    "CALMNetworkConfig", "CALMSettings", "HLCNetworkSettings", "HLCProfile", "LLCEnvSettings", "LLCProfile",
    "NotebookSizes", "PPOSettings", "SCALES", "ScaleProfile", "check_scale", "profile", "DistillConfig", "RouteProfile",
    "TrackerPPOConfig", "TrackingConfig", "route_profile", "CALIBRATION_SIZES", "CalibrationSizes", "DomainModelConfig",
    "DomainTrainSettings", "E2ESettings", "EarlyTerminationConfig", "HLCEnvConfig", "KinematicSettings", "LLMSettings",
    "RewardConfig", "EnvConfig", "STATE_INITS", "LatentPriorSettings", "ModelBasedConfig",
    "LatentFinetuneConfig",
]
