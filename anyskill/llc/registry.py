"""Registration of CALM with rl-games and the rl-games configs of the three scale profiles.

rl-games keeps network and model builders in module-level registries
(``model_builder.register_network`` / ``register_model``) but algorithm builders per ``Runner``
instance (``runner.algo_factory``), so :func:`register_calm` takes the runner::

    runner = register_calm(Runner())
    runner.load(calm_config("smoke", num_envs=8, env_name="anyskill_humanoid"))
    runner.run({"train": True})

The env named in the config must be registered with rl-games first
(``anyskill.sim.env.register_rl_games_env``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from rl_games.algos_torch import model_builder

from anyskill.llc.agent import CALMAgent, CALMSettings
from anyskill.llc.networks import CALMBuilder, CALMModel, CALMNetworkConfig

if TYPE_CHECKING:
    from rl_games.torch_runner import Runner

ALGO_NAME = "calm"
SCALES = ("smoke", "laptop", "paper")


def register_calm(runner: Runner | None = None) -> Runner | None:
    """Register the ``calm`` network and model with rl-games, and the ``calm`` agent with ``runner``.

    Returns ``runner`` (so ``register_calm(Runner())`` reads naturally); without a runner only the
    network and model are registered (enough for :func:`anyskill.llc.controller.load_llc`).
    """
    model_builder.register_network(ALGO_NAME, CALMBuilder)
    model_builder.register_model(ALGO_NAME, CALMModel)
    if runner is not None:
        runner.algo_factory.register_builder(ALGO_NAME, lambda **kwargs: CALMAgent(**kwargs))
    return runner


def _rest_bias() -> tuple[float, ...]:
    """Initial mean action of the ``smoke``/``laptop`` policies: the bundled humanoid's standing pose."""
    from anyskill.sim.model import load_humanoid

    return tuple(float(a) for a in load_humanoid().rest_action)


def _network(scale: str, latent_dim: int) -> CALMNetworkConfig:
    """Per-scale network sizes. ``paper``: the reference (facts §2.1). ``laptop``/``smoke``: smaller nets, an
    encoder reading every 3rd frame of its 2-s window, and a policy that starts at the standing pose (output layer
    x0.01, bias = the rest action) instead of rl-games' default init, whose mean action bends knees and elbows to
    mid-range and falls within a second (measured: the untrained laptop policy's episodes last 0.9 s)."""
    if scale == "paper":
        return CALMNetworkConfig(latent_dim=latent_dim)
    rest = {"actor_out_init_scale": 0.01, "actor_out_bias": _rest_bias()}
    if scale == "laptop":
        return CALMNetworkConfig(latent_dim=latent_dim, enc_units=(512, 256), enc_stride=3, style_units=(256, 128),
                                 style_dim=64, actor_units=(512, 256), critic_units=(512, 256), disc_units=(512, 256),
                                 **rest)
    return CALMNetworkConfig(latent_dim=latent_dim, enc_units=(64,), enc_stride=3, style_units=(32,), style_dim=16,
                             actor_units=(64, 64), critic_units=(64, 64), disc_units=(64, 64), **rest)


def _ppo(scale: str, num_envs: int) -> dict[str, Any]:
    """Per-scale PPO numbers; ``paper`` is the reference calm_humanoid.yaml (facts §2.4)."""
    if scale == "paper":
        horizon, mini_epochs, lr, max_epochs, save_every = 32, 6, 2e-5, 100000, 50
        minibatch = 4096
    elif scale == "laptop":
        horizon, mini_epochs, lr, max_epochs, save_every = 16, 4, 1e-4, 20000, 25
        minibatch = 256
    else:
        horizon, mini_epochs, lr, max_epochs, save_every = 8, 2, 1e-4, 4, 0
        minibatch = 64
    batch = horizon * num_envs
    minibatch = min(minibatch, batch)
    while batch % minibatch:
        minibatch -= 1
    return {"horizon_length": horizon, "mini_epochs": mini_epochs, "learning_rate": lr, "max_epochs": max_epochs,
            "save_frequency": save_every, "minibatch_size": minibatch}


def _calm(scale: str) -> CALMSettings:
    """Per-scale CALM settings; ``paper`` is the reference. ``laptop``/``smoke`` turn on our options (see
    :class:`CALMSettings`): latents coupled to reference-state and default-pose starts with a tracking reward
    (without it the adversarial reward alone left every latent standing still after 1.3 M samples), per-network
    learning rates, many small PPO steps per epoch with the discriminator updated every 4th, a faster-turning
    replay buffer (keep-probability sized so that it turns over in ~100 epochs, as the reference's does in ~150 of
    its 32x larger epochs), smaller discriminator and encoder batches."""
    if scale == "paper":
        return CALMSettings(precision="auto")
    common = dict(latent_from_reset_prob=1.0, latent_from_default_prob=1.0, track_reward_weight=1.0,
                  negative_disc_samples=True, lr_actor=1e-4, lr_critic=3e-4, lr_encoder=1e-4, lr_disc=1e-4,
                  disc_update_every=4, precision="auto")
    if scale == "laptop":
        return CALMSettings(amp_batch_size=256, amp_minibatch_size=256, enc_batch_size=256, replay_buffer_size=8192,
                            replay_keep_prob=0.08, **common)
    return CALMSettings(amp_batch_size=32, amp_minibatch_size=32, replay_buffer_size=512, latent_steps_min=10,
                        latent_steps_max=20, **{**common, "precision": "float32"})


def calm_config(
    scale: str,
    num_envs: int,
    env_name: str = "anyskill_humanoid",
    env_config: dict[str, Any] | None = None,
    device: str | None = None,
    seed: int = 0,
    train_dir: str = "runs",
    experiment_name: str = "calm",
    max_epochs: int | None = None,
    latent_dim: int = 64,
    torch_threads: int | str | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """rl-games config ``{"params": ...}`` training CALM at ``scale`` ("smoke", "laptop" or "paper").

    ``paper`` uses the reference hyper-parameters (facts §2.1-2.4: γ 0.99, λ 0.95, lr 2e-5, horizon 32,
    minibatch 4096, 6 mini-epochs, clip 0.2, critic 5, bounds 10, AMP batch 512 / minibatch 1024,
    buffers 50000, [1024, 1024, 512] nets); ``laptop`` smaller nets and batches for a CPU hour;
    ``smoke`` tiny nets that train a few epochs in seconds. ``overrides`` are merged into
    ``params["config"]`` (a nested ``calm`` dict is merged into the CALM section).
    ``device`` defaults to "cuda:0" for ``paper`` and "cpu" otherwise. ``torch_compile`` is off: the
    gradient penalty needs double backward, which compiled graphs do not support.
    ``torch_threads`` (rl-games' intra-op thread count) defaults to 1 for ``smoke`` (tiny matrices run
    several times faster single-threaded, measured 0.7 s vs 14 s for 4 epochs on a loaded 2-core CPU)
    and rl-games' "auto" otherwise.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    device = device or ("cuda:0" if scale == "paper" else "cpu")
    ppo = _ppo(scale, num_envs)
    if max_epochs is not None:
        ppo["max_epochs"] = max_epochs
    calm = asdict(_calm(scale))
    config: dict[str, Any] = {
        "name": experiment_name,
        "full_experiment_name": experiment_name,
        "env_name": env_name,
        "env_config": dict(env_config or {}),
        "num_actors": num_envs,
        "device": device,
        "train_dir": train_dir,
        "ppo": True,
        "mixed_precision": False,  # CALM's own ``calm.precision`` decides (bfloat16 autocast, no gradient scaler)
        "torch_compile": False,
        "normalize_input": True,
        "normalize_value": True,
        "normalize_advantage": True,
        "value_bootstrap": True,
        "reward_shaper": {"scale_value": 1.0},
        "gamma": 0.99,
        "tau": 0.95,
        "lr_schedule": "constant",
        "schedule_type": "standard",
        "e_clip": 0.2,
        "clip_value": False,
        "critic_coef": 5.0,
        "entropy_coef": 0.0,
        "bounds_loss_coef": 10.0,
        "grad_norm": 1.0,
        "truncate_grads": False,
        "save_best_after": 50 if scale != "smoke" else 10**9,
        "print_stats": scale != "smoke",
        "calm": calm,
        **ppo,
    }
    for key, value in (overrides or {}).items():
        if key == "calm":
            config["calm"].update(value)
        else:
            config[key] = value
    CALMSettings.from_config(config["calm"])  # fail early on a bad override
    return {
        "params": {
            "seed": seed,
            "torch_threads": torch_threads if torch_threads is not None else (1 if scale == "smoke" else "auto"),
            "algo": {"name": ALGO_NAME},
            "model": {"name": ALGO_NAME},
            "network": _network(scale, latent_dim).to_params(),
            "config": config,
        }
    }
