"""The training runner shared by the low- and the high-level policy, around rl-games' agents.

Each package keeps only what is its own (the CALM agent and its env in :mod:`anyskill.llc.calm.train`, the HLC agent,
observer and goal in :mod:`anyskill.hlc.train`); this module holds the rest:

* :func:`resolve_device` and :func:`default_torch_threads`: the defaults of both trainings;
* :func:`rl_games_config`: the rl-games config dict around a :class:`~anyskill.config.ppo.PPOSettings`;
* :func:`create_agent`: rl-games' ``Runner`` set up with our agent builder, every random generator seeded;
* :class:`EpochProgress`: the per-epoch progress bar and ``train_info.json``;
* :class:`TrainResult`: what a run produced;
* :func:`load_frozen`: a checkpoint of ours as a frozen inference module.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from anyskill.config import PPOSettings, profile

Module = TypeVar("Module", bound=nn.Module)

NO_BEST_CHECKPOINTS = 10**9
"""``save_best_after``: rl-games' reward-based "best" checkpoints are off. The CALM style reward is not comparable
across epochs (the discriminator changes), and for both policies the newest checkpoint is the one to use."""


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's ``random`` (rl-games seeds only when its seed is truthy; 0 is not)."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def resolve_device(device: str | None, scale: str) -> str:
    """``device``, or the scale's default (:attr:`ScaleProfile.device`: CUDA for ``paper``), which falls back to
    the CPU, with a warning, where CUDA is not available."""
    if device:
        return device
    default = profile(scale).device
    if default.startswith("cuda") and not torch.cuda.is_available():
        warnings.warn(f"scale {scale!r} trains on {default} by default, but CUDA is not available: using the CPU",
                      RuntimeWarning, stacklevel=2)
        return "cpu"
    return default


def default_torch_threads(device: str) -> int | str:
    """rl-games' intra-op thread count: 1 on the CPU (the networks and env tensors are small; on 2 cores shared with
    other jobs 2 threads were measured slower, ``results/bench_llc.json``), rl-games' "auto" with CUDA."""
    return 1 if device == "cpu" else "auto"


def rl_games_config(*, algo: str, model: str, network: dict[str, Any], ppo: PPOSettings, num_envs: int,
                    env_name: str, device: str, seed: int, train_dir: str, experiment_name: str,
                    torch_threads: int | str, print_stats: bool, env_config: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """rl-games config ``{"params": ...}``: agent ``algo`` with model ``model`` and ``network`` section, ``num_envs``
    actors of the registered env ``env_name``, ``ppo`` fitted to the batch (:meth:`PPOSettings.fitted`) and the
    agent's own keys ``extra`` in the ``config`` section. Mixed precision is rl-games' off (the CALM agent has its
    own ``calm.precision``); ``torch.compile`` is off (the gradient penalty needs double backward, which compiled
    graphs do not support)."""
    config: dict[str, Any] = {
        "name": experiment_name,
        "full_experiment_name": experiment_name,
        "env_name": env_name,
        "env_config": dict(env_config or {}),
        "num_actors": num_envs,
        "device": device,
        "train_dir": train_dir,
        "ppo": True,
        "mixed_precision": False,
        "torch_compile": False,
        "reward_shaper": {"scale_value": 1.0},
        "save_best_after": NO_BEST_CHECKPOINTS,
        "print_stats": print_stats,
        **ppo.fitted(num_envs).to_rl_games(),
        **(extra or {}),
    }
    return {"params": {"seed": seed, "torch_threads": torch_threads, "algo": {"name": algo},
                       "model": {"name": model}, "network": network, "config": config}}


def create_agent(config: dict[str, Any], algo: str, make_agent: Callable[..., Any], observer: Any, seed: int) -> Any:
    """The agent of ``config`` built by ``make_agent(base_name=..., params=...)`` through rl-games' ``Runner`` (which
    creates the registered env and sets the thread count), after seeding every generator with ``seed``."""
    from rl_games.torch_runner import Runner

    runner = Runner(observer)
    runner.algo_factory.register_builder(algo, make_agent)
    runner.load(config)
    seed_everything(seed)
    return runner.algo_factory.create(algo, base_name="run", params=runner.params)


class EpochProgress:
    """Per-epoch progress of a training run: a tqdm bar over epochs with ETA (``progress``), and with ``info_path``
    the JSON record ``info`` of the run plus the counters so far, rewritten every epoch so a killed run still has
    them. ``postfix`` maps bar labels to epoch-stat keys."""

    def __init__(self, desc: str, max_epochs: int, progress: bool = True, info_path: Path | None = None,
                 info: dict[str, Any] | None = None, postfix: dict[str, str] | None = None):
        self.desc = desc
        self.max_epochs = max_epochs
        self.progress = progress
        self.info_path = info_path
        self.info = info if info is not None else {}
        self.postfix = postfix or {}
        self._bar = None
        self._t0 = time.perf_counter()

    def update(self, epoch: int, samples: int, stats: dict[str, float]) -> None:
        """Epoch ``epoch`` (counted from 1, across resumes) ended after ``samples`` env steps in all."""
        if self.progress and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.max_epochs, initial=epoch - 1, desc=self.desc, unit="epoch", mininterval=5.0)
        if self._bar is not None:
            shown = {label: stats.get(key) for label, key in self.postfix.items()}
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items() if v is not None}, refresh=False)
            self._bar.update(1)
        if self.info_path is not None:
            self.info.update(epochs=epoch, samples=int(samples), wall_time_s=round(time.perf_counter() - self._t0, 1),
                             last_stats={k: round(float(v), 5) for k, v in stats.items()})
            self.info_path.write_text(json.dumps(self.info, indent=2) + "\n")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@dataclass
class TrainResult:
    """What a training run produced. ``checkpoint``: the final rl-games checkpoint (.pth); ``tensorboard_dir``: the
    run's summaries; ``epochs``: last epoch number and ``samples`` env steps collected (both counted across
    resumes); ``wall_time_s``: this run's wall time; ``epoch_stats``: one dict per epoch of this run (:attr:`stats`
    as a table); ``initial_checkpoint``: the untrained policy where the run saved it (high-level policy);
    ``provenance``: the run's :class:`~anyskill.provenance.Provenance` record."""

    checkpoint: Path
    out_dir: Path
    tensorboard_dir: Path
    epochs: int
    samples: int
    wall_time_s: float
    epoch_stats: list[dict[str, float]] = field(default_factory=list)
    initial_checkpoint: Path | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> pd.DataFrame:
        """``epoch_stats`` as a DataFrame, one row per epoch."""
        return pd.DataFrame(self.epoch_stats)


def load_frozen(path: str | Path, config_key: str, build: Callable[[dict[str, Any]], Module], what: str,
                how_to_train: str, device: str | torch.device = "cpu") -> Module:
    """A checkpoint written by one of our rl-games agents as a frozen module on ``device``.

    The checkpoint holds the rl-games model's state dict (``model``) and the description that rebuilds it
    (``config_key``); ``build(description)`` returns a module whose ``model`` attribute is that rl-games model.
    ``what`` names the kind of checkpoint and ``how_to_train`` says how to make one, for the error messages.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint {path} does not exist; {how_to_train}")
    from rl_games.algos_torch import torch_ext

    state = torch_ext.safe_load(str(path))
    if config_key not in state or "model" not in state:
        raise ValueError(f"{path} is not a {what} checkpoint (keys {sorted(state)}); it needs 'model' and "
                         f"{config_key!r}: {how_to_train}")
    module = build(state[config_key])
    model = cast(nn.Module, module.model)
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in state["model"].items()})
    for p in module.parameters():
        p.requires_grad_(False)
    return module.to(device).eval()
