"""Settings of the tracking route (:mod:`anyskill.llc.tracking`): the tracking task, the tracker's PPO, the DAgger
distillation, and their sizes per scale (:func:`route_profile`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class TrackingConfig:
    """Settings of :class:`TrackingEnv` (kernels after MimicKit's DeepMimic humanoid, LLC-ROUTES.md)."""

    num_envs: int = 256
    future_frames: int = 2
    """reference frames observed, 1..K control steps ahead."""
    residual_scale: float = 0.3
    """PD target offset per unit action, as a fraction of the env's action-to-target scale."""
    episode_length: int = 300
    """control steps (10 s) before a time-out."""
    standing_start_prob: float = 0.35
    """probability that an episode starts standing and blends into the clip (else RSI)."""
    first_frame_prob: float = 0.5
    """of the standing starts, the fraction that blend into the clip's first frame (else a random frame)."""
    blend_steps: int = 15
    """control steps of a blend (0.5 s)."""
    termination_error_m: float = 0.4
    """mean body position error (world, m) that ends an episode."""
    failure_weighting: float = 1.0
    """0: clips by the library's weights; 1: weights * (failure rate + 0.05), tracked as a running mean."""
    w_pose: float = 0.3
    w_local: float = 0.2
    w_key: float = 0.15
    w_root: float = 0.15
    w_root_vel: float = 0.1
    w_dof_vel: float = 0.1
    k_pose: float = 0.5
    k_local: float = 40.0
    k_key: float = 10.0
    k_root: float = 5.0
    k_root_vel: float = 1.0
    k_dof_vel: float = 0.01
    seed: int = 0
    device: str = "cpu"
    backend: str = "auto"
    """physics: "mujoco" (MuJoCo C, CPU), "warp" (MuJoCo Warp on ``device``; Warp's CPU device for tests) or "auto"
    (Warp on a CUDA device, else MuJoCo C)."""
    num_threads: int = 1
    """MuJoCo stepping threads (2 on a 2-core machine that is otherwise idle)."""
    dense: bool | None = None
    """masks over all envs instead of index lists, so a step never waits for the host (the GPU mode); None: on a
    GPU. The CPU takes the blending and resetting envs by index (cheaper there); both give the same trajectories."""

    def __post_init__(self) -> None:
        for name in ("num_envs", "future_frames", "episode_length", "blend_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrackingConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("standing_start_prob", "first_frame_prob", "failure_weighting"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TrackingConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.backend not in ("auto", "mujoco", "warp"):
            raise ValueError(f"TrackingConfig.backend must be 'auto', 'mujoco' or 'warp', got {self.backend!r}")


@dataclass
class TrackerPPOConfig:
    """PPO of the tracker; sizes measured on the 2-core CPU machine (LLC-ROUTES.md: width is the first lever)."""

    horizon: int = 32
    """control steps per env per iteration."""
    epochs: int = 4
    minibatch: int = 512
    lr: float = 3e-4
    """initial learning rate, then adapted to keep the policy's KL per epoch near ``kl_target`` (rl-games' adaptive
    schedule: with a small fixed std, a fixed rate either crawls or makes PPO clip most of a batch)."""
    kl_target: float = 0.05
    lr_min: float = 1e-6
    lr_max: float = 1e-3
    gamma: float = 0.97
    lam: float = 0.95
    clip: float = 0.2
    critic_lr: float = 5e-4
    max_grad_norm: float = 1.0
    learn_threads: int = 1
    """torch threads for the PPO update (the rollout runs single-threaded torch beside the MuJoCo threads)."""
    action_std: float = 0.1
    action_std_final: float = 0.05
    actor_units: tuple[int, ...] = (512, 256)
    critic_units: tuple[int, ...] = (512, 256)
    total_samples: int = 20_000_000
    checkpoint_every_s: float = 300.0
    eval_every_iters: int = 0
    """0: no periodic evaluation; else evaluate the tracker on every clip every k iterations (the curve)."""


@dataclass
class ModelBasedConfig:
    """The model-based tracker (:mod:`anyskill.llc.tracking.model_based`, SuperTrack-style; LLC-ROUTES.md,
    "Model-based trackers"): a world model learnt from the simulator's transitions, the policy trained by
    backpropagating a tracking loss through it over short windows that start in real states."""

    total_samples: int = 2_000_000
    """real control steps (all worlds)."""
    collect_steps: int = 8
    """control steps per world between learning phases."""
    buffer_steps: int = 256
    """control steps per world kept (the newest): 256 x 256 worlds is 65 k transitions."""
    warmup_samples: int = 16_384
    """real samples before the policy starts learning (the model learns first)."""
    model_window: int = 8
    """control steps the model rolls out from a real state against the real transitions."""
    policy_window: int = 8
    """control steps the policy acts inside the model from a real state."""
    policy_rollout: str = "corrected"
    """"model": the policy's window is the model's own rollout (SuperTrack); "corrected": each step is the real next
    state plus the model's predicted effect of the policy's action change, model(s~, a) - model(real, a_logged), so
    model error cannot compound (the value is the real trajectory's wherever the actions agree)."""
    model_updates: int = 12
    policy_updates: int = 2
    model_batch: int = 512
    policy_batch: int = 128
    model_units: tuple[int, ...] = (256, 256)
    actor_units: tuple[int, ...] = (512, 256)
    critic_units: tuple[int, ...] = (512, 256)
    """the critic is not trained here; it is kept so that PPO can fine-tune the same :class:`Tracker`."""
    model_lr: float = 1e-3
    policy_lr: float = 3e-4
    max_grad_norm: float = 1.0
    action_std: float = 0.1
    """exploration noise of the collecting policy (residual action units)."""
    w_pos: float = 1.0
    """tracking loss weights: world body positions (m),"""
    w_local: float = 1.0
    """root-relative body positions (m),"""
    w_rot: float = 0.3
    """body rotations (rad),"""
    w_vel: float = 0.1
    """root-relative body velocities (m/s),"""
    w_action: float = 0.01
    """squared residual actions."""
    learn_threads: int = 1
    checkpoint_every_s: float = 300.0
    eval_every_samples: int = 0
    """0: no periodic evaluation; else evaluate the tracker on every clip every this many real samples."""

    def __post_init__(self) -> None:
        for name in ("collect_steps", "buffer_steps", "model_window", "policy_window", "model_batch", "policy_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelBasedConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.policy_rollout not in ("model", "corrected"):
            raise ValueError("ModelBasedConfig.policy_rollout must be 'model' or 'corrected', "
                             f"got {self.policy_rollout!r}")
        if self.buffer_steps <= max(self.model_window, self.policy_window, self.collect_steps):
            raise ValueError(f"ModelBasedConfig.buffer_steps ({self.buffer_steps}) must exceed the windows "
                             f"({self.model_window}, {self.policy_window}) and collect_steps ({self.collect_steps})")


@dataclass
class DistillConfig:
    """DAgger settings and student sizes."""

    num_envs: int = 256
    horizon: int = 32
    total_samples: int = 6_000_000
    teacher_steps_frac: float = 0.1
    sliding_prob: float = 0.3
    """episodes whose latent re-encodes the reference's window every ``llc_steps`` steps (a high-level replay)."""
    switch_prob: float = 0.25
    """episodes that switch to a random window of a random clip now and then (reference blended in from the pose)."""
    random_latent_prob: float = 0.15
    """episodes that switch to random unit latents, labelled with the window whose latent is nearest; the rest of the
    episodes hold the latent of their first window (CALM's held skill)."""
    switch_clips: tuple[str, ...] = ()
    """clips whose windows the switch and random regimes go to (empty: every clip). Naming the clips the teacher
    performs keeps a switched or random latent from being labelled with a motion the teacher falls in (held and
    sliding episodes still cover every clip, so every clip keeps its latent)."""
    random_hold_prob: float = 0.0
    """random episodes that hold their one random latent until the episode ends (the reference plays on from the
    nearest window and loops), as a held random latent or a converged high-level policy's steady output sends;
    the others switch as ``cadence_switch_prob`` says."""
    cadence_switch_prob: float = 0.5
    """switches at the high-level cadence (every ``llc_steps``), else after U[llc_steps, max_switch_steps] steps."""
    max_switch_steps: int = 90
    llc_steps: int = 5
    latent_noise_prob: float = 0.2
    latent_noise: float = 0.3
    """per-dimension std of the latent noise at its largest (each noisy latent draws its scale uniformly below)."""
    replay_size: int = 400_000
    updates: int = 8
    minibatch: int = 2048
    lr: float = 5e-4
    lr_final: float = 5e-5
    align_coef: float = 0.1
    uniform_coef: float = 0.05
    align_shift_s: float = 0.5
    reg_batch: int = 256
    latent_dim: int = 64
    enc_steps: int = 60
    enc_stride: int = 3
    enc_units: tuple[int, ...] = (512, 256)
    policy_units: tuple[int, ...] = (512, 512, 256)
    timing_horizon: int = 60
    checkpoint_every_s: float = 300.0
    eval_every_iters: int = 0
    learn_threads: int = 1
    precision: str = "auto"
    """of the supervised update: "bfloat16" autocast, "float32", or "auto" (bfloat16 where the CPU has AMX or
    AVX512-BF16: 2.3x faster on the encoder's first layer, measured)."""

    def __post_init__(self) -> None:
        probs = (self.sliding_prob, self.switch_prob, self.random_latent_prob)
        if min(probs) < 0 or sum(probs) > 1 + 1e-9:
            raise ValueError(f"DistillConfig: sliding_prob, switch_prob, random_latent_prob must be >= 0 and sum to "
                             f"<= 1, got {probs}")
        if not 0.0 <= self.random_hold_prob <= 1.0:
            raise ValueError(f"DistillConfig.random_hold_prob must be in [0, 1], got {self.random_hold_prob}")
        if self.max_switch_steps < self.llc_steps:
            raise ValueError(f"DistillConfig.max_switch_steps must be >= llc_steps, got {self.max_switch_steps}")


@dataclass
class LatentFinetuneConfig:
    """The RL fine-tune of a distilled π_L on the latents a high-level policy sends
    (:mod:`anyskill.llc.tracking.latent_finetune`): PPO on survival, the policy kept near the distilled one.

    The shipped ``llc_laptop.pth``: these defaults for 3.4 M samples, then continued for 3.0 M with
    ``action_std=0.01 anchor_coef=0.02 held_random_prob=0.45 cadence_random_prob=0.2 interval_random_prob=0.1
    critic_warmup_iters=0`` (its model card)."""

    num_envs: int = 256
    horizon: int = 32
    """control steps per env per iteration."""
    total_samples: int = 8_000_000
    held_random_prob: float = 0.3
    """episodes that hold one random unit latent to their end."""
    cadence_random_prob: float = 0.3
    """episodes whose random unit latent is redrawn every ``llc_steps`` steps (the high-level cadence)."""
    interval_random_prob: float = 0.15
    """episodes whose random unit latent is redrawn after U[llc_steps, max_switch_steps] steps; the rest of the
    episodes hold the encoder's latent of a clip window (the skills, which must not be lost)."""
    llc_steps: int = 5
    max_switch_steps: int = 90
    clip_start_prob: float = 0.1
    """episodes that start in a clip's state at a random time (else the standing pose)."""
    episode_length: int = 300
    """control steps (10 s) before a time-out."""
    action_std: float = 0.02
    """exploration noise, env action units (the action range is [-1, 1])."""
    anchor_coef: float = 0.2
    """weight of KL(π_θ || π_distilled) = |μ_θ - μ_0|² / (2 std²) (summed over the action, mean over states)."""
    gamma: float = 0.97
    lam: float = 0.95
    clip: float = 0.2
    epochs: int = 4
    minibatch: int = 2048
    lr: float = 1e-5
    """initial actor learning rate, then adapted to keep the KL per epoch near ``kl_target``."""
    kl_target: float = 0.02
    lr_min: float = 1e-7
    lr_max: float = 1e-4
    critic_lr: float = 5e-4
    critic_units: tuple[int, ...] = (512, 256)
    critic_warmup_iters: int = 10
    """iterations at the start of a run in which only the critic learns (its first values are noise)."""
    max_grad_norm: float = 1.0
    num_threads: int = 2
    """MuJoCo stepping threads."""
    learn_threads: int = 2
    checkpoint_every_s: float = 300.0

    def __post_init__(self) -> None:
        probs = (self.held_random_prob, self.cadence_random_prob, self.interval_random_prob)
        if min(probs) < 0 or sum(probs) > 1 + 1e-9:
            raise ValueError(f"LatentFinetuneConfig: held_random_prob, cadence_random_prob, interval_random_prob "
                             f"must be >= 0 and sum to <= 1, got {probs}")
        if not 0.0 <= self.clip_start_prob <= 1.0:
            raise ValueError(f"LatentFinetuneConfig.clip_start_prob must be in [0, 1], got {self.clip_start_prob}")
        for name in ("num_envs", "horizon", "llc_steps", "epochs", "minibatch"):
            if getattr(self, name) < 1:
                raise ValueError(f"LatentFinetuneConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_switch_steps < self.llc_steps:
            raise ValueError("LatentFinetuneConfig.max_switch_steps must be >= llc_steps, got "
                             f"{self.max_switch_steps}")
        if self.action_std <= 0:
            raise ValueError(f"LatentFinetuneConfig.action_std must be > 0, got {self.action_std}")


def field_overrides(cls: type, pairs: list[str], flag: str) -> dict[str, Any]:
    """``["name=value", ...]`` -> typed fields of the dataclass ``cls`` (the CLI's ``flag``, e.g. ``--distill-set``);
    a field that is not a number or a string, or an unknown name, is an error that lists the settable ones."""
    kinds: dict[str, type] = {f.name: type(f.default) for f in fields(cls) if type(f.default) in (int, float, str)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in kinds:
            raise ValueError(f"{flag} takes KEY=VALUE with KEY one of {', '.join(sorted(kinds))}; got {pair!r}")
        try:
            out[key] = kinds[key](value)
        except ValueError:
            raise ValueError(f"{flag} {key} must be a {kinds[key].__name__}, got {value!r}") from None
    return out


def distill_overrides(pairs: list[str]) -> dict[str, Any]:
    """:class:`DistillConfig` fields from ``train-llc --distill-set`` (:func:`field_overrides`; ``switch_clips``:
    use ``--switch-clips``)."""
    return field_overrides(DistillConfig, pairs, "--distill-set")


@dataclass(frozen=True)
class RouteProfile:
    """Sizes of the tracking route at one scale."""

    track: TrackingConfig
    ppo: TrackerPPOConfig
    distill: DistillConfig
    tracker_share: float = 0.6
    """fraction of a wall-clock budget given to the tracker."""
    model_based: ModelBasedConfig = field(default_factory=ModelBasedConfig)
    """the model-based tracker's settings (``train-llc --tracker model_based``; its samples are ``ppo``'s)."""


ROUTE_PROFILES = ("smoke", "laptop", "paper", "gpu")
"""The tracking route's sizes: the scales, and ``gpu`` (one GPU, MuJoCo Warp)."""


def route_profile(scale: str) -> RouteProfile:
    """``laptop``: 256 humanoids, 2 MuJoCo threads (the 2-core target), tracker [512, 256], student policy
    [512, 512, 256]; ``smoke``: tiny sizes that run every path in seconds; ``paper``: the laptop sizes with 4096
    envs (the route is not the paper's; CALM is); ``gpu``: one GPU, MuJoCo Warp — 8192 humanoids, 16 control steps
    each per iteration (131 k samples), 5 epochs of 16 k minibatches, the laptop's network sizes, sample counts
    large enough that a wall-clock budget ends the run (one-shot GPU training: :mod:`anyskill.llc.tracking.oneshot`).
    """
    if scale not in ROUTE_PROFILES:
        raise ValueError(f"route profile must be one of {ROUTE_PROFILES}, got {scale!r}")
    if scale == "smoke":
        return RouteProfile(
            track=TrackingConfig(num_envs=8, episode_length=60),
            ppo=TrackerPPOConfig(horizon=8, epochs=2, minibatch=32, actor_units=(64, 64), critic_units=(64, 64),
                                 total_samples=128, checkpoint_every_s=1e9),
            distill=DistillConfig(num_envs=8, horizon=8, total_samples=128, replay_size=1024, updates=2,
                                  minibatch=32, reg_batch=16, enc_units=(64,), policy_units=(64, 64),
                                  checkpoint_every_s=1e9),
            model_based=ModelBasedConfig(collect_steps=4, buffer_steps=16, warmup_samples=32, model_window=4,
                                         policy_window=4, model_updates=2, policy_updates=2, model_batch=16,
                                         policy_batch=8, model_units=(64,), actor_units=(64, 64),
                                         critic_units=(64, 64), checkpoint_every_s=1e9),
        )
    if scale == "gpu":
        return RouteProfile(
            track=TrackingConfig(num_envs=8192, device="cuda:0"),
            # 5 epochs of 8 minibatches: 40 gradient steps per 131 k samples (the first H200 run took 16 and its
            # adaptive learning rate sat at lr_max throughout: more learning per sample was on offer)
            ppo=TrackerPPOConfig(horizon=16, epochs=5, minibatch=16384, total_samples=2_000_000_000,
                                 checkpoint_every_s=60.0),
            distill=DistillConfig(num_envs=8192, horizon=16, total_samples=60_000_000, replay_size=2_000_000,
                                  updates=32, minibatch=8192, reg_batch=512, checkpoint_every_s=60.0),
            tracker_share=0.7,
        )
    envs = 4096 if scale == "paper" else 256
    return RouteProfile(
        track=TrackingConfig(num_envs=envs, num_threads=2),
        ppo=TrackerPPOConfig(total_samples=12_000_000, learn_threads=2),
        distill=DistillConfig(num_envs=envs, total_samples=4_000_000, learn_threads=2),
        model_based=ModelBasedConfig(learn_threads=2),
    )
