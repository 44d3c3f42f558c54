"""PPO settings shared by the low- and the high-level policy, and their rl-games form.

rl-games reads PPO's numbers from the flat ``config`` section of its config dict; :meth:`PPOSettings.to_rl_games`
writes that part and :meth:`PPOSettings.from_rl_games` reads it back. Defaults are the reference values of both
policies (facts §2.4 and §3.6: γ 0.99, λ 0.95, clip 0.2, critic 5, entropy 0, bounds 10, normalised input, value and
advantage); the sizes have no default, every scale profile sets them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class PPOSettings:
    """rl-games continuous PPO: rollout length, minibatches, learning rate, epochs, saving, loss weights."""

    horizon_length: int
    """control steps per env and epoch (the LLC's 30 Hz steps, the HLC's 6 Hz steps)."""
    minibatch_size: int
    """samples per gradient step; :meth:`fitted` makes it divide the batch (horizon_length x envs)."""
    mini_epochs: int
    learning_rate: float
    max_epochs: int
    save_frequency: int
    """epochs between checkpoints (0: only the final one)."""
    gamma: float = 0.99
    tau: float = 0.95
    e_clip: float = 0.2
    clip_value: bool = False
    critic_coef: float = 5.0
    entropy_coef: float = 0.0
    bounds_loss_coef: float = 10.0
    grad_norm: float = 1.0
    truncate_grads: bool = False
    normalize_input: bool = True
    normalize_value: bool = True
    normalize_advantage: bool = True
    value_bootstrap: bool = True
    lr_schedule: str = "constant"
    schedule_type: str = "standard"

    def __post_init__(self) -> None:
        for name in ("horizon_length", "minibatch_size", "mini_epochs", "max_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"PPOSettings.{name} must be >= 1, got {getattr(self, name)}")
        if self.save_frequency < 0 or self.learning_rate <= 0:
            raise ValueError(f"need save_frequency >= 0 and learning_rate > 0, got {self.save_frequency}, "
                             f"{self.learning_rate}")

    def fitted(self, num_envs: int) -> PPOSettings:
        """These settings for ``num_envs`` envs: the minibatch shrunk to the largest size <= ``minibatch_size`` that
        divides the batch ``horizon_length * num_envs`` (rl-games requires whole minibatches)."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        batch = self.horizon_length * num_envs
        minibatch = min(self.minibatch_size, batch)
        while batch % minibatch:
            minibatch -= 1
        return replace(self, minibatch_size=minibatch)

    def to_rl_games(self) -> dict[str, Any]:
        """The PPO keys of rl-games' ``config`` section."""
        return asdict(self)

    @classmethod
    def from_rl_games(cls, config: dict[str, Any]) -> PPOSettings:
        """Read the PPO keys back from an rl-games ``config`` section (other keys are ignored)."""
        return cls(**{f.name: config[f.name] for f in fields(cls) if f.name in config})
