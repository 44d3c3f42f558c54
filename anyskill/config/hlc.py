"""Settings of the high-level policy: its network (:class:`HLCNetworkSettings`; the per-scale PPO numbers are
:class:`~anyskill.config.ppo.PPOSettings`), its environment (:class:`HLCEnvConfig`) and the calibration of the
state projection, per scale (:class:`CalibrationSizes`, :data:`CALIBRATION_SIZES`).

The policy is rl-games' ``actor_critic`` network: separate actor and critic MLPs, a tanh on the mean latent and a
fixed, non-learned log-std (facts §3.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from anyskill.config.reward import EarlyTerminationConfig, RewardConfig

INIT_LOG_STD = -2.3
"""The reference's fixed log-std of π_H (facts §3.1)."""

LATENT_ACTIONS = ("free", "anchored", "anchored_previous")
"""How π_H's action a becomes the latent z (:func:`anyskill.llc.prior.latent_from_action`): "free" normalize(a)
(the paper's), "anchored" normalize(μ_p(s) + σ a) around the controller's latent prior, "anchored_previous"
normalize(z_prev + σ a) around the env's previous latent (the first from the prior)."""
ANCHOR_SCALE = 0.3
"""σ of the anchored actions: an untrained π_H (|a| ≈ 1.1) stays within cos ≈ 0.95 of its anchor, a trained one
reaches any latent (|σ a| up to 2.4)."""


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


@dataclass
class HLCEnvConfig:
    """Settings of :class:`anyskill.hlc.env.HighLevelEnv`."""

    num_envs: int = 16
    llc_steps: int = 5
    """LLC steps per HLC step (30 Hz / 5 = 6 Hz, facts §1.2)."""
    episode_length: int | None = 150
    """LLC steps (150 = 5 s); the reference uses 50. None: no time limit (rollouts)."""
    state_init: str = "default"
    """"default" (standing spawn pose), "random" (reference state init from the motion library) or "hybrid"."""
    hybrid_init_prob: float = 0.5
    num_reference_latents: int = 128
    """K, encodings of random 60-frame library windows used for the style term (facts §3.3)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    early_termination: EarlyTerminationConfig = field(default_factory=EarlyTerminationConfig)
    stagger_episodes: bool = True
    """start the first episodes at random progress in [0, episode_length) so that time-outs do not reset every env
    at once (with synchronised episodes each PPO batch holds a single episode phase, which destabilises training)."""
    record_states: bool = False
    """put the per-LLC-step qpos and body positions in the step's infos (rollouts)."""
    scene: str | None = None
    """an interaction scene of :data:`anyskill.sim.scene.SCENES` ("ball", "door"); None: the humanoid alone."""
    scene_jitter: float = 0.0
    """randomisation of the scene's object placement at resets, in [0, 1] (:class:`anyskill.sim.scene.Scene`)."""
    latent_action: str = "free"
    """how the policy's action becomes the latent, one of :data:`LATENT_ACTIONS` ("free": the paper's; "anchored":
    around the controller's latent prior, :mod:`anyskill.llc.prior`)."""
    anchor_scale: float = ANCHOR_SCALE
    """σ of the anchored actions."""
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1

    def __post_init__(self) -> None:
        for name in ("num_envs", "llc_steps", "episode_length", "num_reference_latents"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"HLCEnvConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_action not in LATENT_ACTIONS:
            raise ValueError(f"HLCEnvConfig.latent_action must be one of {LATENT_ACTIONS}, got {self.latent_action!r}")
        if self.anchor_scale <= 0:
            raise ValueError(f"HLCEnvConfig.anchor_scale must be > 0, got {self.anchor_scale}")


@dataclass(frozen=True)
class CalibrationSizes:
    """How much one calibration renders and fits. ``frames``: rendered + encoded frames in all; ``heldout_envs``:
    envs whose whole trajectories are held out for the fidelity numbers; ``object_move_prob``: per env and LLC step,
    the chance that a scene's objects are moved (:mod:`anyskill.hlc.calibration_data`)."""

    frames: int
    num_envs: int
    render_every: int = 3
    heldout_envs: int = 1
    epochs: int = 100
    hidden: tuple[int, ...] = (512,)
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0
    episode_length: int = 300
    object_move_prob: float = 0.03
    encode_batch: int = 32

    def __post_init__(self) -> None:
        if self.frames < 2 * self.num_envs or self.num_envs < 2:
            raise ValueError(f"need >= 2 envs and >= 2 frames per env, got {self.frames} frames, {self.num_envs} envs")
        if not 1 <= self.heldout_envs < self.num_envs:
            raise ValueError(f"heldout_envs must be in [1, num_envs), got {self.heldout_envs} of {self.num_envs}")


CALIBRATION_SIZES = {
    "smoke": CalibrationSizes(frames=64, num_envs=4, render_every=2, heldout_envs=1, epochs=30, encode_batch=16),
    "laptop": CalibrationSizes(frames=6144, num_envs=16, render_every=3, heldout_envs=3, epochs=150),
    "paper": CalibrationSizes(frames=40960, num_envs=64, render_every=3, heldout_envs=12, epochs=200),
}
"""Per scale; ``laptop`` takes ~5 min on 2 CPU cores at ~20 frames/s (README compute table: measured)."""
