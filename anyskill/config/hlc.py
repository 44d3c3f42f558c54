"""Settings of the high-level policy's network (the per-scale PPO numbers are
:class:`~anyskill.config.ppo.PPOSettings`).

The policy is rl-games' ``actor_critic`` network: separate actor and critic MLPs, a tanh on the mean latent and a
fixed, non-learned log-std (facts §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

INIT_LOG_STD = -2.3
"""The reference's fixed log-std of π_H (facts §3.1)."""


@dataclass(frozen=True)
class HLCNetworkSettings:
    """MLP sizes of π_H's actor and critic, and its fixed log-std."""

    units: tuple[int, ...] = (1024, 512)
    init_log_std: float = INIT_LOG_STD

    def to_params(self) -> dict[str, Any]:
        """The rl-games ``network`` section."""
        return {
            "name": "actor_critic",
            "separate": True,
            "space": {"continuous": {
                "mu_activation": "tanh",
                "sigma_activation": "None",
                "mu_init": {"name": "default"},
                "sigma_init": {"name": "const_initializer", "val": float(self.init_log_std)},
                "fixed_sigma": True,
            }},
            "mlp": {"units": list(self.units), "activation": "relu", "d2rl": False,
                    "initializer": {"name": "default"}, "regularizer": {"name": "None"}},
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> HLCNetworkSettings:
        """Read the sizes back from an rl-games ``network`` section written by :meth:`to_params`."""
        return cls(units=tuple(int(u) for u in params["mlp"]["units"]),
                   init_log_std=float(params["space"]["continuous"]["sigma_init"]["val"]))
