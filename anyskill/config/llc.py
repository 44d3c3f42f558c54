"""Settings of the low-level controller's training: its env, the CALM networks and the CALM agent.

Plain frozen dataclasses (no torch, no rl-games): :mod:`anyskill.config.profiles` fills them per scale, and
:func:`anyskill.llc.calm.registry.calm_config` turns them into the rl-games config (``network`` and ``config.calm``
sections), which every CALM checkpoint stores and :func:`anyskill.llc.load_llc` reads back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

PRECISIONS = ("auto", "float32", "bfloat16")
MOTION_WEIGHTS = ("manifest", "uniform")


@dataclass(frozen=True)
class LLCEnvSettings:
    """The env of LLC training (facts §2.5 unless noted); passed to :class:`anyskill.sim.env.EnvConfig`."""

    state_init: str = "hybrid"
    """CALM-style: reference state init with probability ``hybrid_init_prob``, else the default pose
    (the AnySkill reference uses "Default" only; hybrid init shows the policy every clip's states)."""
    hybrid_init_prob: float = 0.5
    fall_init_prob: float = 0.1
    recovery_episode_prob: float = 0.2
    recovery_steps: int = 60
    episode_length: int = 300
    """control steps (10 s); CALM's original configs; the AnySkill reference has no time limit."""
    num_threads: int = 1
    """threads stepping the MuJoCo worlds (chunks of envs in a thread pool; 1: the calling thread)."""
    motion_weights: str = "manifest"
    """how motion clips are drawn for latents and reference starts: the manifest's weights, or "uniform" (every
    clip alike; an option of ours for small budgets, where the manifest's category-balanced weights give the hard
    acrobatic and running clips a third of the samples)."""

    def __post_init__(self) -> None:
        if self.motion_weights not in MOTION_WEIGHTS:
            raise ValueError(f"motion_weights must be one of {MOTION_WEIGHTS}, got {self.motion_weights!r}")

    def env_options(self) -> dict[str, Any]:
        """The :class:`~anyskill.sim.env.EnvConfig` keyword arguments (everything but ``motion_weights``)."""
        return {k: v for k, v in asdict(self).items() if k != "motion_weights"}


@dataclass(frozen=True)
class CALMNetworkConfig:
    """Sizes of the CALM networks (the rl-games ``network`` section minus ``name``).

    Defaults are the reference values (facts §2.1). ``amp_frame_dim`` is the size of one AMP frame,
    ``enc_steps``/``disc_steps`` the number of frames in the encoder / discriminator windows. ``enc_stride`` (an
    option of ours, 1 in the reference): the encoder reads every ``enc_stride``-th frame of its window (newest
    first), e.g. 20 frames at 10 Hz spanning the same 2 s for stride 3, which divides its cost by the stride.
    """

    latent_dim: int = 64
    amp_frame_dim: int = 125
    enc_steps: int = 60
    enc_stride: int = 1
    disc_steps: int = 10
    enc_units: tuple[int, ...] = (1024, 1024, 512)
    style_units: tuple[int, ...] = (512, 256)
    style_dim: int = 64
    actor_units: tuple[int, ...] = (1024, 1024, 512)
    critic_units: tuple[int, ...] = (1024, 1024, 512)
    disc_units: tuple[int, ...] = (1024, 1024, 512)
    init_log_std: float = -2.9
    actor_out_init_scale: float | None = None
    """None: PyTorch's default init of the actor's output layer (the reference); a number u: weights U(-u, u)."""
    actor_out_bias: tuple[float, ...] | None = None
    """initial bias of the actor's output (mean action of an untrained policy); None: zeros (the reference)."""
    enc_init_scale: float = 0.1
    style_init_scale: float = 1.0
    disc_logit_init_scale: float = 1.0

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CALMNetworkConfig:
        """Build from an rl-games ``network`` dict; unknown keys raise with the list of valid ones."""
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in params.items() if k not in ("name", "separate")}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown CALM network option(s) {unknown}; valid options are {sorted(known)}"
            )
        for key in ("enc_units", "style_units", "actor_units", "critic_units", "disc_units"):
            if key in values:
                values[key] = tuple(int(u) for u in values[key])
        if values.get("actor_out_bias") is not None:
            values["actor_out_bias"] = tuple(float(b) for b in values["actor_out_bias"])
        return cls(**values)

    def to_params(self) -> dict[str, Any]:
        """The rl-games ``network`` dict (with ``name: calm``), lists instead of tuples."""
        out: dict[str, Any] = {"name": "calm"}
        for key, value in asdict(self).items():
            out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True)
class CALMSettings:
    """The ``calm`` section of the rl-games ``config``; defaults are the reference values (facts §2.2-2.4) unless
    marked as an option of ours.

    latent_steps_min/max: a latent is held for U{min .. max-1} control steps. amp_batch_size: demo windows drawn per
    epoch to update the AMP normaliser (the reference's new demo samples per epoch). amp_minibatch_size: agent,
    replay and demo windows per discriminator step. replay_keep_prob: fraction of an epoch's agent samples kept
    once the replay buffer is full. negative_disc_samples: add the paper's ternary term (demo windows under another
    sample's latent labelled fake); the reference code computes but does not use it. align_max_shift: end times of
    the two alignment windows differ by U(0, align_max_shift) s. eps_greedy: env i acts stochastically with
    probability 1 - exp(10 (i / (N - 1) - 1)), else takes the mean action. motion_dt: spacing of AMP frames, s.

    Options of ours (off / neutral by default; the ``smoke`` and ``laptop`` profiles turn them on, see
    :mod:`anyskill.config.profiles`): ``latent_from_reset_prob`` (module docstring); ``latent_from_default_prob``: an
    episode starting from the default standing pose gets, with this probability, the latent of a random clip's
    window within its first 2 s, and (with tracking on) tracks that clip from its first frame — the situation in
    which the high-level policy and the skill evaluation use the controller; ``track_reward_weight`` w adds a
    DeepMimic-style tracking reward while an episode that started from a clip's reference state (or, see above,
    from the default pose) still holds that clip's latent: w * 0.5 [exp(-track_reward_scale e) +
    exp(-track_reward_scale_wide e)], e (m^2) the sum of the squared distances of the root height and the 14
    root-relative body positions (heading frame) to the clip's at the same time. The wide kernel keeps a gradient
    when the motion is far from the clip's (standing still under the raising-arms clip earns 0.34, 10 % of the way
    0.37, half-way 0.55, exactly 1), the sharp one rewards precision; a single sharp kernel on the mean error
    (0.83 for standing still, 0.89 half-way) taught nothing from standing starts in 190 k samples. A dense signal
    that teaches each latent its skill far sooner than the adversarial reward alone; ``enc_batch_size`` demo windows
    for the uniformity term and alignment pairs per step (default: amp_minibatch_size); ``disc_update_every`` k:
    the discriminator and encoder-regulariser terms join every k-th PPO minibatch step (1: every step, the
    reference), so that many small PPO steps per epoch do not multiply the discriminator's cost;
    ``kl_target``: adapt the learning rates to the policy's KL divergence per minibatch step (mean over an epoch):
    all divided by 1.5 when it exceeds twice the target, multiplied by 1.5 below half of it, within 0.1x-3x of their
    configured values (None: constant, the reference); ``key_pose_reward_weight`` w > 0: an episode coupled to a clip
    from the default standing pose is rewarded (same two kernels, weight w) for reaching and holding its window's key
    pose — the frame farthest from the window's first — instead of tracking the clip in time: from standing, the
    policy cannot tell whether a gesture is about to start or already over (nothing in its observation says when),
    and a time-dependent target was not learned in 120-200 k samples even for one clip, while a fixed one was
    learned in ~60 k; ``track_latent_every`` k > 0: while a clip is tracked, every k
    control steps its latent is replaced by the encoding of the window ending ``track_latent_lookahead`` s after the
    tracked time, so the latent tells the policy which part of the clip comes next (0: the coupled latent is held, as
    CALM holds latents); ``encoder_through_policy`` False: the actor and critic use the
    latents the rollout used (no gradient into the encoder), so the encoder learns only from its alignment and
    uniformity losses and the latents stay put while the policy learns to depend on them (with gradients through
    the policy they drifted, and after 1 M samples the policy's actions at the standing pose differed by only 0.015
    between clips' latents); ``lr_actor/critic/encoder/disc`` per-network learning rates
    (None: the config's learning_rate);
    ``precision`` of the update: "bfloat16" autocast, "float32", or "auto" (bfloat16 on CUDA and on CPUs with AMX
    tiles, where it is several times faster; float32 elsewhere). Rollouts always run in float32.
    """

    latent_steps_min: int = 10
    latent_steps_max: int = 150
    amp_batch_size: int = 512
    amp_minibatch_size: int = 1024
    replay_buffer_size: int = 50000
    replay_keep_prob: float = 0.01
    disc_coef: float = 5.0
    disc_logit_reg: float = 0.01
    disc_grad_penalty: float = 5.0
    disc_weight_decay: float = 1e-4
    disc_reward_scale: float = 2.0
    negative_disc_samples: bool = False
    enc_coef: float = 0.1
    enc_align_weight: float = 1.0
    enc_uniform_weight: float = 0.5
    align_max_shift: float = 0.5
    eps_greedy: bool = True
    bound_soft_limit: float = 1.0
    motion_dt: float = 1.0 / 30.0
    latent_from_reset_prob: float = 0.0
    latent_from_default_prob: float = 0.0
    track_reward_weight: float = 0.0
    track_reward_scale: float = 5.0
    track_reward_scale_wide: float = 0.5
    enc_batch_size: int | None = None
    disc_update_every: int = 1
    kl_target: float | None = None
    encoder_through_policy: bool = True
    key_pose_reward_weight: float = 0.0
    track_latent_every: int = 0
    track_latent_lookahead: float = 1.0
    lr_actor: float | None = None
    lr_critic: float | None = None
    lr_encoder: float | None = None
    lr_disc: float | None = None
    precision: str = "float32"

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> CALMSettings:
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise ValueError(f"unknown option(s) {unknown} in config['calm']; valid options are {sorted(known)}")
        s = cls(**section)
        if not 1 <= s.latent_steps_min < s.latent_steps_max:
            raise ValueError(f"need 1 <= latent_steps_min < latent_steps_max, got {s.latent_steps_min}, "
                             f"{s.latent_steps_max}")
        if s.kl_target is not None and s.kl_target <= 0:
            raise ValueError(f"kl_target must be > 0 or None, got {s.kl_target}")
        if s.track_latent_every < 0 or s.track_latent_lookahead < 0:
            raise ValueError(f"track_latent_every and track_latent_lookahead must be >= 0, got {s.track_latent_every}, "
                             f"{s.track_latent_lookahead}")
        if s.disc_update_every < 1:
            raise ValueError(f"disc_update_every must be >= 1, got {s.disc_update_every}")
        if s.amp_minibatch_size < 2 or s.amp_batch_size < 1 or (s.enc_batch_size is not None and s.enc_batch_size < 2):
            raise ValueError(f"amp_minibatch_size and enc_batch_size must be >= 2 (uniformity loss) and amp_batch_size "
                             f">= 1, got {s.amp_minibatch_size}, {s.enc_batch_size}, {s.amp_batch_size}")
        for name in ("replay_keep_prob", "latent_from_reset_prob", "latent_from_default_prob"):
            if not 0.0 <= getattr(s, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(s, name)}")
        if s.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {s.precision!r}")
        return s


PRIOR_SOURCES = ("reference", "rollout", "both")
PRIOR_KINDS = ("nearest", "mlp")


@dataclass(frozen=True)
class LatentPriorSettings:
    """The latent prior μ_p(s) of a low-level controller (:mod:`anyskill.llc.prior`): what it is fitted on and how.

    ``kind``: "nearest" (the latent of the sample whose standardised observation is nearest to s: a nearest-neighbour
    regression, always a latent of a real motion window) or "mlp" (an MLP of hidden sizes ``units`` regressed onto the
    latents: ``steps`` Adam steps of ``batch_size`` samples at ``lr``, cosine decay, on the mean squared error to the
    unit targets; where the state does not decide the motion, e.g. standing, it predicts a blend of several clips'
    latents). ``source``: "reference" (every ``reference_stride``-th control step of every clip: the policy
    observation of the clip's reference state, the encoder's latent of the window that starts there), "rollout" (the
    controller itself replaying each clip with sliding latents — the latent of the clip's window that starts now,
    re-encoded every ``llc_steps`` steps — from ``rollout_starts`` random times of the clip and as many times from the
    standing pose, for at most ``rollout_seconds`` s or until it falls: the states it visits and the latent it was
    sent) or "both". ``heldout_fraction`` of the trajectories (whole rollouts, 1-s blocks of a clip) are held out for
    the reported error. Measured with the shipped controller (issue 27, ``anyskill eval-llc --random-latents``): the
    default (nearest, reference) keeps an untrained π_H's characters up and moving; the MLP's blends made them stand
    still or fall.
    """

    kind: str = "nearest"
    source: str = "reference"
    units: tuple[int, ...] = (256, 256)
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1e-3
    reference_stride: int = 1
    rollout_starts: int = 4
    rollout_seconds: float = 8.0
    llc_steps: int = 5
    heldout_fraction: float = 0.15
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in PRIOR_KINDS:
            raise ValueError(f"kind must be one of {PRIOR_KINDS}, got {self.kind!r}")
        if self.source not in PRIOR_SOURCES:
            raise ValueError(f"source must be one of {PRIOR_SOURCES}, got {self.source!r}")
        for name in ("steps", "batch_size", "reference_stride", "rollout_starts", "llc_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"LatentPriorSettings.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
