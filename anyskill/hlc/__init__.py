"""The high-level policy π_H (paper §3.2-3.3): goals, the environment over the frozen LLC, training, inference,
rollouts, the state projection's calibration and cache; the general (multi-prompt) policy and the text-enhancement
study (§4.3); the pose-goal comparison of controllers (``pose_comparison``). Commands: ``cli`` (``train-hlc``,
``rollout``), ``calibrate_cli`` (``calibrate``, ``calibration-times``), ``pose_comparison`` (``compare-llc-pose``).
Settings (``HLCEnvConfig``, ``CalibrationSizes``) live in :mod:`anyskill.config.hlc`."""

from anyskill.config.hlc import HLCEnvConfig
from anyskill.hlc.clip_goals import ImageGoal, TextGoal
from anyskill.hlc.env import HighLevelEnv
from anyskill.hlc.general import GeneralHighLevelEnv, PromptSetGoal, evaluate_prompts
from anyskill.hlc.goal import Goal, HumanoidStates
from anyskill.hlc.goal_spec import find_clip, goal_from_spec
from anyskill.hlc.policy import HighLevelPolicy, load_hlc
from anyskill.hlc.pose_goal import PoseGoal
from anyskill.hlc.rollout import Evaluation, RolloutResult, evaluate, rollout
from anyskill.hlc.train import hlc_config, train_hlc

__all__ = [
    "Evaluation", "GeneralHighLevelEnv", "Goal", "HLCEnvConfig", "HighLevelEnv", "HighLevelPolicy", "HumanoidStates",
    "ImageGoal", "PoseGoal", "PromptSetGoal", "RolloutResult", "TextGoal", "evaluate", "evaluate_prompts", "find_clip",
    "goal_from_spec", "hlc_config", "load_hlc", "rollout", "train_hlc",
]
