"""Settings of the evaluation: the physics-free kinematic CEM baseline (:class:`KinematicSettings`,
:mod:`anyskill.eval.kinematic`) and the size of the low-level controller's latent checks (:data:`LATENT_CHECK_ENVS`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KinematicSettings:
    """CEM budget and search ranges. keyframes K; population P; elites E; iterations I; stride: frames between
    the scored renders; init_std: σ of the first draw for (root height m, root rotation vector rad, hinges rad)."""

    keyframes: int = 4
    population: int = 16
    elites: int = 4
    iterations: int = 5
    stride: int = 6
    init_std: tuple[float, float, float] = (0.1, 0.3, 0.6)
    min_std: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.elites <= self.population or self.keyframes < 2 or self.iterations < 1 or self.stride < 1:
            raise ValueError(f"invalid KinematicSettings {self}")


LATENT_CHECK_ENVS = 128
"""Characters per mode in the random-latent and untrained-π_H checks (:mod:`anyskill.llc.latent_checks`): a
stay-up fraction's standard error is at most 0.5/√envs, 4.4 points at 128 (8.8 at the 32 used before issue 27's
second round, where one draw of a controller read 66 % and three draws of 128 read 85-88 %)."""
