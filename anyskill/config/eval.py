"""Settings of the evaluation's compared methods: the physics-free kinematic CEM baseline
(:class:`KinematicSettings`, :mod:`anyskill.eval.kinematic`)."""

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
