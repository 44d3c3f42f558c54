"""Registration of CALM with rl-games and the rl-games config of a scale profile.

rl-games keeps network and model builders in module-level registries
(``model_builder.register_network`` / ``register_model``) but algorithm builders per ``Runner``
instance (``runner.algo_factory``), so :func:`register_calm` takes the runner::

    runner = register_calm(Runner())
    runner.load(calm_config("smoke", num_envs=8, env_name="anyskill_humanoid"))
    runner.run({"train": True})

The env named in the config must be registered with rl-games first
(:func:`anyskill.rl.vecenv.register_rl_games_env`).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

from rl_games.algos_torch import model_builder

from anyskill.config import CALMNetworkConfig, CALMSettings, profile
from anyskill.llc.calm.agent import CALMAgent
from anyskill.llc.calm.networks import CALMBuilder, CALMModel
from anyskill.rl.runner import default_torch_threads, resolve_device, rl_games_config

if TYPE_CHECKING:
    from rl_games.torch_runner import Runner

ALGO_NAME = "calm"


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
    print_stats: bool | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """rl-games config ``{"params": ...}`` training CALM with the ``scale`` profile (:func:`anyskill.config.profile`).

    ``paper`` uses the reference hyper-parameters (facts §2.1-2.4: γ 0.99, λ 0.95, lr 2e-5, horizon 32,
    minibatch 4096, 6 mini-epochs, clip 0.2, critic 5, bounds 10, AMP batch 512 / minibatch 1024,
    buffers 50000, [1024, 1024, 512] nets); ``laptop`` smaller nets and batches for a CPU hour;
    ``smoke`` tiny nets that train a few epochs in seconds. ``overrides`` are merged into
    ``params["config"]``, except two nested dicts: ``calm`` is merged into the CALM section and ``network`` into
    the network section (both validated). ``device`` defaults to the profile's (:func:`resolve_device`),
    ``torch_threads`` to :func:`default_torch_threads`, ``print_stats`` (rl-games' per-epoch prints) to the
    profile's.
    """
    prof = profile(scale)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    device = resolve_device(device, scale)
    ppo = prof.llc.ppo if max_epochs is None else replace(prof.llc.ppo, max_epochs=max_epochs)
    overrides = dict(overrides or {})
    network = replace(prof.llc.network, latent_dim=latent_dim).to_params()
    network.update(overrides.pop("network", {}))
    CALMNetworkConfig.from_params(network)  # fail early on a bad override
    config = rl_games_config(
        algo=ALGO_NAME, model=ALGO_NAME, network=network, ppo=ppo, num_envs=num_envs, env_name=env_name,
        env_config=env_config, device=device, seed=seed, train_dir=train_dir, experiment_name=experiment_name,
        torch_threads=default_torch_threads(device) if torch_threads is None else torch_threads,
        print_stats=prof.print_stats if print_stats is None else print_stats,
        extra={"calm": asdict(prof.llc.calm)},
    )
    section = config["params"]["config"]
    section["calm"].update(overrides.pop("calm", {}))
    section.update(overrides)
    CALMSettings.from_config(section["calm"])  # fail early on a bad override
    return config
