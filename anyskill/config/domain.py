"""Settings of the domain text–image model (:mod:`anyskill.domain`): its towers (:class:`DomainModelConfig`), its
optimisation (:class:`DomainTrainSettings`) and the end-to-end check's high-level runs (:class:`E2ESettings`)."""

from __future__ import annotations

from dataclasses import dataclass

from anyskill.config.hlc import ANCHOR_SCALE


@dataclass(frozen=True)
class DomainModelConfig:
    """Sizes of the two towers. ``channels``: CNN stage widths (each stage halves the resolution)."""

    image_size: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_tokens: int = 40
    """tokens the text tower reads (start token included); captions of the closed vocabulary are far shorter."""


@dataclass(frozen=True)
class DomainTrainSettings:
    """Optimisation of :func:`anyskill.domain.train.train_domain_model`."""

    steps: int = 800
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    shift_px: int = 4
    p_clip: float = 0.15
    p_lexicon: float = 0.15
    max_facts: int = 2
    word_dropout: float = 0.1
    projection_hidden: tuple[int, ...] = (256,)
    projection_epochs: int = 60
    seed: int = 0
    time_budget_s: float | None = None
    """wall-time budget of the optimisation: after 10 steps the planned number of steps (and so the learning-rate
    schedule) is cut to what fits, at most ``steps``; the steps done are recorded."""


@dataclass(frozen=True)
class E2ESettings:
    """A reduced ``laptop`` run per prompt (the full profile is 300 epochs x 64 envs), for
    :func:`anyskill.domain.e2e.train_and_measure`."""

    num_envs: int = 32
    epochs: int = 60
    horizon: int = 8
    units: tuple[int, ...] = (128, 64)
    learning_rate: float = 3e-4
    episode_length: int = 150
    eval_seconds: float = 4.0
    eval_envs: int = 8
    seed: int = 0
    latent_action: str = "free"
    """how π_H's action becomes a latent (:attr:`anyskill.config.hlc.HLCEnvConfig.latent_action`)."""
    anchor_scale: float = ANCHOR_SCALE
    """σ of anchored latent actions."""
    early_termination: str = "paper"
    """a name of :data:`anyskill.config.reward.EARLY_TERMINATIONS`."""

    def __post_init__(self) -> None:
        from anyskill.config.reward import EARLY_TERMINATIONS

        if self.early_termination not in EARLY_TERMINATIONS:
            raise ValueError(f"early_termination must be one of {list(EARLY_TERMINATIONS)}, "
                             f"got {self.early_termination!r}")
