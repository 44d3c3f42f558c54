"""rl-games vec-env adapter shared by the low- and the high-level policy's training.

rl-games creates environments by name: :func:`register_rl_games_env` stores a factory under a name (vec-env type
``ANYSKILL``), and rl-games then builds an :class:`RlGamesVecEnv` around the env the factory makes.
"""

from __future__ import annotations

from collections.abc import Callable

from rl_games.common.ivecenv import IVecEnv
from torch import Tensor

RL_GAMES_VECENV_TYPE = "ANYSKILL"


class RlGamesVecEnv(IVecEnv):
    """rl-games vec-env adapter: creates the env registered under ``config_name`` and forwards to it. Works for any
    env with ``num_envs``, ``reset``, ``step``, ``observation_space`` and ``action_space`` (the low- and the
    high-level env); an ``amp_observation_space`` is passed on when the env has one."""

    def __init__(self, config_name: str, num_actors: int, **kwargs):
        from rl_games.common import env_configurations

        self.env = env_configurations.configurations[config_name]["env_creator"](**kwargs)
        if self.env.num_envs != num_actors:
            raise ValueError(
                f"rl-games asked for {num_actors} actors but env {config_name!r} has {self.env.num_envs} envs; "
                "make config.num_actors equal to the env's num_envs"
            )

    def step(self, actions: Tensor):
        return self.env.step(actions)

    def reset(self):
        return self.env.reset()

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_info(self) -> dict:
        info = {"observation_space": self.env.observation_space, "action_space": self.env.action_space,
                "agents": 1, "value_size": 1}
        if hasattr(self.env, "amp_observation_space"):
            info["amp_observation_space"] = self.env.amp_observation_space
        return info


def register_rl_games_env(name: str, env_factory: Callable) -> None:
    """Make ``env_factory(**kwargs)`` available to rl-games as env ``name`` (vecenv type "ANYSKILL")."""
    from rl_games.common import env_configurations, vecenv

    env_configurations.register(name, {"env_creator": env_factory, "vecenv_type": RL_GAMES_VECENV_TYPE})
    vecenv.register(RL_GAMES_VECENV_TYPE,
                    lambda config_name, num_actors, **kwargs: RlGamesVecEnv(config_name, num_actors, **kwargs))
