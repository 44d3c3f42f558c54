"""Settings of the simulated humanoid task (:class:`~anyskill.sim.env.HumanoidEnv`)."""

from __future__ import annotations

from dataclasses import dataclass

STATE_INITS = ("default", "start", "random", "hybrid")


@dataclass
class EnvConfig:
    """Settings of :class:`HumanoidEnv`; defaults follow the reference LLC config (facts §2.5) where noted."""

    num_envs: int = 16
    control_freq_inv: int = 4
    """physics steps (1/120 s) per control step: 30 Hz control (facts §1.2)."""
    episode_length: int | None = 300
    """control steps; None: no time limit (the reference LLC uses 3,000,000), CALM's original configs 300."""
    state_init: str = "default"
    """"default" (spawn pose, the reference LLC), "start" (clip frame 0), "random" (reference state init,
    random clip and time), "hybrid" (random with probability hybrid_init_prob, else default)."""
    hybrid_init_prob: float = 0.5
    fall_init_prob: float = 0.1
    """probability that a reset starts from the fall-state bank (0 skips building the bank)."""
    recovery_episode_prob: float = 0.2
    recovery_steps: int = 60
    termination_height: float = 0.15
    """m; bodies other than the feet below this while touching something end the episode."""
    enable_early_termination: bool = True
    num_amp_obs_steps: int = 10
    num_fall_states: int | None = None
    """size of the fall-state bank; None: num_envs."""
    fall_settle_steps: int = 300
    """physics steps under random PD targets that make each fall state: 2.5 s at 120 Hz, the duration of
    the reference's 150 steps at 60 Hz (facts §1.2, §2.5)."""
    spawn_height: float = 0.89
    """m, root height of the default pose (facts §1.1)."""
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    """worker threads of the MuJoCo backend."""
    self_collision: bool = True
    integrator: str | None = None
    """MuJoCo integrator override ("implicit" is steadier under violent actions, 1.75x slower); None: the MJCF's."""

    def __post_init__(self) -> None:
        if self.state_init not in STATE_INITS:
            raise ValueError(f"state_init must be one of {STATE_INITS}, got {self.state_init!r}")
        for name in ("num_envs", "control_freq_inv", "num_amp_obs_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.episode_length is not None and self.episode_length < 2:
            raise ValueError(f"episode_length must be >= 2 control steps or None (no limit), got {self.episode_length}")
        if self.recovery_steps < 0:
            raise ValueError(f"recovery_steps must be >= 0, got {self.recovery_steps}")
        for name in ("hybrid_init_prob", "fall_init_prob", "recovery_episode_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
