"""The named scale profiles ``smoke | laptop | paper``: every per-scale number of the project in one place.

* ``smoke``: seconds to a few minutes on 2 CPU cores; tests and CI; proves every path runs.
* ``laptop``: minutes to an hour on a CPU; small but meaningful results.
* ``paper``: the paper's hyper-parameters (reference facts §2.1-2.5, §3.1, §3.6), for a GPU.

Training (:func:`anyskill.llc.calm.train.train_llc`, :func:`anyskill.hlc.train.train_hlc`), the CLI, the notebooks and
:mod:`anyskill.reproduce` read their defaults from :func:`profile`; the rl-games configs are generated from it
(:func:`anyskill.llc.calm.registry.calm_config`, :func:`anyskill.hlc.train.hlc_config`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from anyskill.config.hlc import HLCNetworkSettings
from anyskill.config.llc import CALMNetworkConfig, CALMSettings, LLCEnvSettings
from anyskill.config.ppo import PPOSettings

SCALES = ("smoke", "laptop", "paper")


def check_scale(scale: str) -> str:
    """``scale`` if it names a profile; else a ValueError listing the profiles."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    return scale


@dataclass(frozen=True)
class LLCProfile:
    """Low-level controller training at one scale: parallel humanoids, env, PPO, CALM networks and agent."""

    num_envs: int
    env: LLCEnvSettings
    ppo: PPOSettings
    network: CALMNetworkConfig
    calm: CALMSettings


@dataclass(frozen=True)
class HLCProfile:
    """High-level policy training at one scale: parallel humanoids, PPO, network; ``general_ppo``: PPO of the
    general (multi-prompt) policy (:mod:`anyskill.hlc.general`)."""

    num_envs: int
    ppo: PPOSettings
    network: HLCNetworkSettings
    general_ppo: PPOSettings


@dataclass(frozen=True)
class NotebookSizes:
    """How much the notebooks compute at one scale (their training runs use the LLC/HLC profiles)."""

    latent_windows_per_clip: int
    """notebook 03: encoder windows per clip in the latent map."""
    projection_pairs: int
    """notebook 04: rendered (state, CLIP feature) pairs collected for the state projection."""
    projection_epochs: int
    rollout_seconds: float
    """notebook 04: length of the text-goal rollout, s."""
    speedup_envs: int
    """notebook 04: envs and HLC horizon of the render-vs-projection timing."""
    speedup_horizon: int
    text_prompts: int
    """notebook 05: how many of its prompts get a policy on the original and one on the enhanced text (the first
    three are the paper's Fig. 6 pairs)."""
    text_rollout_seconds: float
    """notebook 05: length of each rendered rollout, s."""
    table_prompts: int
    """notebooks 07-09: prompts each compared method is trained on."""
    table_rollout_seconds: float
    """notebooks 07-09: length of each measured rollout (and of the kinematic baseline's motion), s."""
    table_clip_stride: int
    """notebooks 07-09: CLIP_S scores every k-th rendered frame."""
    kinematic_population: int
    """notebook 07: the kinematic baseline's CEM population and iterations."""
    kinematic_iterations: int


@dataclass(frozen=True)
class ScaleProfile:
    """Everything that differs between the scales. ``device``: the default device (CUDA for ``paper``);
    ``print_stats``: rl-games' per-epoch prints when no progress bar is shown (off at ``smoke``: quiet tests)."""

    name: str
    device: str
    print_stats: bool
    llc: LLCProfile
    hlc: HLCProfile
    notebooks: NotebookSizes


def _rest_bias() -> tuple[float, ...]:
    """Initial mean action of the ``smoke``/``laptop`` policies: the bundled humanoid's standing pose."""
    from anyskill.humanoid.model import load_humanoid

    return tuple(float(a) for a in load_humanoid().rest_action)


def _llc(scale: str) -> LLCProfile:
    """``paper``: the reference (facts §2.1-2.5). ``laptop``/``smoke``: smaller nets, an encoder reading every 3rd
    frame of its 2-s window, and a policy that starts at the standing pose (output layer x0.01, bias = the rest
    action) instead of rl-games' default init, whose mean action bends knees and elbows to mid-range and falls
    within a second (measured: the untrained laptop policy's episodes last 0.9 s). Their CALM agents turn on our
    options (see :class:`CALMSettings`): latents coupled to reference-state and default-pose starts with a tracking
    reward (without it the adversarial reward alone left every latent standing still after 1.3 M samples),
    per-network learning rates, many small PPO steps per epoch with the discriminator updated every 4th, a
    faster-turning replay buffer (keep-probability sized so that it turns over in ~100 epochs, as the reference's
    does in ~150 of its 32x larger epochs), smaller discriminator and encoder batches, KL-adaptive learning rates,
    latents the encoder's regulariser alone shapes, a key-pose reward for standing starts. ``laptop`` draws clips
    uniformly, starts 70 % of the episodes standing (where the skills must be initiated; 30 % from reference
    states) and, for its small budget, drops the get-up training (fall-state bank and recovery episodes: ~20 % of
    the samples spent lying down) (:class:`LLCEnvSettings`)."""
    if scale == "paper":
        return LLCProfile(
            num_envs=4096,
            env=LLCEnvSettings(),
            ppo=PPOSettings(horizon_length=32, minibatch_size=4096, mini_epochs=6, learning_rate=2e-5,
                            max_epochs=100000, save_frequency=50),
            network=CALMNetworkConfig(),
            calm=CALMSettings(precision="auto"),
        )
    rest: dict[str, Any] = {"actor_out_init_scale": 0.01, "actor_out_bias": _rest_bias()}
    ours: dict[str, Any] = dict(latent_from_reset_prob=1.0, latent_from_default_prob=1.0, track_reward_weight=1.0,
                negative_disc_samples=True, lr_actor=1e-4, lr_critic=3e-4, lr_encoder=1e-4, lr_disc=1e-4,
                disc_update_every=4, kl_target=0.05, encoder_through_policy=False, key_pose_reward_weight=1.0,
                track_reward_scale=10.0, track_reward_scale_wide=2.0)
    if scale == "laptop":
        return LLCProfile(
            num_envs=64,
            env=LLCEnvSettings(motion_weights="uniform", hybrid_init_prob=0.3, fall_init_prob=0.0,
                               recovery_episode_prob=0.0),
            ppo=PPOSettings(horizon_length=16, minibatch_size=256, mini_epochs=4, learning_rate=1e-4,
                            max_epochs=20000, save_frequency=25),
            network=CALMNetworkConfig(enc_units=(512, 256), enc_stride=3, style_units=(256, 128), style_dim=64,
                                      actor_units=(512, 256), critic_units=(512, 256), disc_units=(512, 256), **rest),
            calm=CALMSettings(amp_batch_size=256, amp_minibatch_size=256, enc_batch_size=256,
                              replay_buffer_size=8192, replay_keep_prob=0.08, precision="auto", **ours),
        )
    return LLCProfile(
        num_envs=8,
        env=LLCEnvSettings(),
        ppo=PPOSettings(horizon_length=8, minibatch_size=64, mini_epochs=2, learning_rate=1e-4, max_epochs=4,
                        save_frequency=0),
        network=CALMNetworkConfig(enc_units=(64,), enc_stride=3, style_units=(32,), style_dim=16,
                                  actor_units=(64, 64), critic_units=(64, 64), disc_units=(64, 64), **rest),
        calm=CALMSettings(amp_batch_size=32, amp_minibatch_size=32, replay_buffer_size=512, latent_steps_min=10,
                          latent_steps_max=20, precision="float32", **ours),
    )


_SMOKE_HLC_PPO = PPOSettings(horizon_length=4, minibatch_size=16, mini_epochs=2, learning_rate=3e-4, max_epochs=3,
                             save_frequency=0)
_HLC = {
    # facts §3.1, §3.6: 1024 envs, horizon 4 HLC steps, minibatch 2048, 6 mini-epochs, lr 2e-5, 500 epochs;
    # general policy (facts §8, gen_anyskill.yaml): horizon 32, minibatch 16384, 800 epochs
    "paper": HLCProfile(1024, PPOSettings(horizon_length=4, minibatch_size=2048, mini_epochs=6, learning_rate=2e-5,
                                          max_epochs=500, save_frequency=50), HLCNetworkSettings((1024, 512)),
                        general_ppo=PPOSettings(horizon_length=32, minibatch_size=16384, mini_epochs=6,
                                                learning_rate=2e-5, max_epochs=800, save_frequency=50)),
    "laptop": HLCProfile(64, PPOSettings(horizon_length=8, minibatch_size=256, mini_epochs=5, learning_rate=1e-4,
                                         max_epochs=300, save_frequency=50), HLCNetworkSettings((256, 128)),
                         general_ppo=PPOSettings(horizon_length=8, minibatch_size=256, mini_epochs=5,
                                                 learning_rate=1e-4, max_epochs=500, save_frequency=50)),
    "smoke": HLCProfile(8, _SMOKE_HLC_PPO, HLCNetworkSettings((64, 32)), general_ppo=_SMOKE_HLC_PPO),
}

_NOTEBOOKS = {
    "smoke": NotebookSizes(latent_windows_per_clip=6, projection_pairs=48, projection_epochs=30, rollout_seconds=2.0,
                           speedup_envs=2, speedup_horizon=1, text_prompts=3, text_rollout_seconds=1.0,
                           table_prompts=1, table_rollout_seconds=1.0, table_clip_stride=3, kinematic_population=6,
                           kinematic_iterations=2),
    "laptop": NotebookSizes(latent_windows_per_clip=12, projection_pairs=2048, projection_epochs=100,
                            rollout_seconds=5.0, speedup_envs=8, speedup_horizon=4, text_prompts=6,
                            text_rollout_seconds=4.0, table_prompts=3, table_rollout_seconds=4.0, table_clip_stride=1,
                            kinematic_population=16, kinematic_iterations=5),
    "paper": NotebookSizes(latent_windows_per_clip=24, projection_pairs=20000, projection_epochs=200,
                           rollout_seconds=8.0, speedup_envs=64, speedup_horizon=4, text_prompts=6,
                           text_rollout_seconds=5.0, table_prompts=5, table_rollout_seconds=8.0, table_clip_stride=1,
                           kinematic_population=32, kinematic_iterations=10),
}


@functools.cache
def profile(scale: str) -> ScaleProfile:
    """The :class:`ScaleProfile` named ``scale`` ("smoke", "laptop" or "paper")."""
    check_scale(scale)
    return ScaleProfile(name=scale, device="cuda:0" if scale == "paper" else "cpu", print_stats=scale != "smoke",
                        llc=_llc(scale), hlc=_HLC[scale], notebooks=_NOTEBOOKS[scale])
