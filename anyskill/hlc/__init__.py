"""The high-level policy π_H (paper §3.2-3.3): goals, the environment over the frozen LLC, training, inference,
rollouts and the state-projection data/timing."""

from anyskill.hlc.env import HighLevelEnv, HLCEnvConfig, register_hlc_env
from anyskill.hlc.goals import Goal, HumanoidStates, ImageGoal, PoseGoal, TextGoal, find_clip, goal_from_spec
from anyskill.hlc.policy import HighLevelPolicy, load_hlc
from anyskill.hlc.rollout import Evaluation, RolloutResult, evaluate, rollout
from anyskill.hlc.train import TrainResult, hlc_config, train_hlc

__all__ = [
    "Evaluation", "Goal", "HLCEnvConfig", "HighLevelEnv", "HighLevelPolicy", "HumanoidStates", "ImageGoal",
    "PoseGoal", "RolloutResult", "TextGoal", "TrainResult", "evaluate", "find_clip", "goal_from_spec", "hlc_config",
    "load_hlc", "register_hlc_env", "rollout", "train_hlc",
]
