"""Training the high-level policy π_H with rl-games' continuous PPO (paper §3.2-3.3, facts §3.1 and §3.6).

The policy is rl-games' standard ``actor_critic`` network with separate actor and critic MLPs ([1024, 512] ReLU at
``paper`` scale), a tanh on the 64-D mean and a fixed, non-learned log-std of -2.3. The only additions to the
stock A2C agent (:class:`HLCAgent`) are freezing that log-std and storing the HLC's description (network sizes,
goal, LLC checkpoint, CLIP weights) in every checkpoint, which :func:`anyskill.hlc.policy.load_hlc` reads.

    result = train_hlc(PoseGoal.from_clip(clip), "llc.pth", scale="smoke", out_dir="runs/hlc_pose")
    result.epoch_stats  # pandas DataFrame: similarity, reward terms, early-termination events per epoch
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common.algo_observer import AlgoObserver

from anyskill.hlc.env import HighLevelEnv, HLCEnvConfig, register_hlc_env
from anyskill.hlc.goals import Goal
from anyskill.llc.controller import load_llc
from anyskill.provenance import Provenance

SCALES = ("smoke", "laptop", "paper")
ALGO_NAME = "anyskill_hlc"
ENV_NAME = "anyskill_hlc_env"
INIT_LOG_STD = -2.3


@dataclass(frozen=True)
class HLCScale:
    """Sizes of one scale profile: envs, network, PPO numbers."""

    num_envs: int
    units: tuple[int, ...]
    horizon_length: int
    minibatch_size: int
    mini_epochs: int
    learning_rate: float
    max_epochs: int
    save_frequency: int


SCALE_PROFILES = {
    # facts §3.1, §3.6: 1024 envs, horizon 4 HLC steps, minibatch 2048, 6 mini-epochs, lr 2e-5, 500 epochs
    "paper": HLCScale(1024, (1024, 512), 4, 2048, 6, 2e-5, 500, 50),
    "laptop": HLCScale(64, (256, 128), 8, 256, 5, 1e-4, 300, 50),
    "smoke": HLCScale(8, (64, 32), 4, 16, 2, 3e-4, 3, 0),
}


def hlc_network_params(units: tuple[int, ...] | list[int], init_log_std: float = INIT_LOG_STD) -> dict[str, Any]:
    """rl-games ``network`` section of π_H: separate actor/critic MLPs, tanh mean, fixed log-std (-2.3)."""
    return {
        "name": "actor_critic",
        "separate": True,
        "space": {"continuous": {
            "mu_activation": "tanh",
            "sigma_activation": "None",
            "mu_init": {"name": "default"},
            "sigma_init": {"name": "const_initializer", "val": float(init_log_std)},
            "fixed_sigma": True,
        }},
        "mlp": {"units": list(units), "activation": "relu", "d2rl": False,
                "initializer": {"name": "default"}, "regularizer": {"name": "None"}},
    }


def hlc_config(scale: str, num_envs: int | None = None, device: str | None = None, seed: int = 0,
               train_dir: str = "runs", experiment_name: str = "hlc", max_epochs: int | None = None,
               hlc_info: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """rl-games config ``{"params": ...}`` for π_H at ``scale``; ``overrides`` are merged into ``params["config"]``.

    ``paper``: the reference spec_anyskill.yaml numbers (γ 0.99, λ 0.95, clip 0.2, critic 5, entropy 0, bounds 10,
    normalised input/value/advantage). ``laptop``: 64 envs, [256, 128]. ``smoke``: 8 envs, [64, 32], 3 epochs.
    Two ``overrides`` keys change the network instead: ``units`` (MLP sizes) and ``init_log_std`` (default -2.3).
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    prof = SCALE_PROFILES[scale]
    num_envs = num_envs or prof.num_envs
    device = device or ("cuda:0" if scale == "paper" and torch.cuda.is_available() else "cpu")
    batch = prof.horizon_length * num_envs
    minibatch = min(prof.minibatch_size, batch)
    while batch % minibatch:
        minibatch -= 1
    config: dict[str, Any] = {
        "name": experiment_name,
        "full_experiment_name": experiment_name,
        "env_name": ENV_NAME,
        "env_config": {},
        "num_actors": num_envs,
        "device": device,
        "ppo_device": device,
        "train_dir": train_dir,
        "ppo": True,
        "mixed_precision": False,
        "torch_compile": False,
        "normalize_input": True,
        "normalize_value": True,
        "normalize_advantage": True,
        "value_bootstrap": True,
        "reward_shaper": {"scale_value": 1.0},
        "gamma": 0.99,
        "tau": 0.95,
        "learning_rate": prof.learning_rate,
        "lr_schedule": "constant",
        "schedule_type": "standard",
        "e_clip": 0.2,
        "clip_value": False,
        "critic_coef": 5.0,
        "entropy_coef": 0.0,
        "bounds_loss_coef": 10.0,
        "grad_norm": 1.0,
        "truncate_grads": False,
        "horizon_length": prof.horizon_length,
        "minibatch_size": minibatch,
        "mini_epochs": prof.mini_epochs,
        "max_epochs": prof.max_epochs if max_epochs is None else max_epochs,
        "save_frequency": prof.save_frequency,
        "save_best_after": 10**9,
        "print_stats": False,
        "seq_length": 1,  # no RNN; rl-games still requires batch % seq_length == 0
        "hlc": dict(hlc_info or {}),
    }
    overrides = dict(overrides or {})
    units = tuple(overrides.pop("units", prof.units))
    init_log_std = float(overrides.pop("init_log_std", INIT_LOG_STD))
    config.update(overrides)
    return {"params": {
        "seed": seed,
        "torch_threads": 1 if device == "cpu" else "auto",
        "algo": {"name": ALGO_NAME},
        "model": {"name": "continuous_a2c_logstd"},
        "network": hlc_network_params(units, init_log_std),
        "config": config,
    }}


class HLCAgent(A2CAgent):
    """rl-games' continuous A2C/PPO with the log-std frozen at its initial value (facts §3.1) and the HLC's
    description (``config["hlc"]`` plus network and sizes) stored in checkpoints under ``hlc_config``."""

    def __init__(self, base_name: str, params: dict[str, Any]):
        super().__init__(base_name, params)
        self.model.a2c_network.sigma.requires_grad_(False)
        self.hlc_checkpoint_config = {
            **params["config"].get("hlc", {}),
            "network": params["network"],
            "model": params["model"],
            "obs_dim": int(self.obs_shape[0]),
            "actions_num": int(self.actions_num),
            "normalize_input": bool(self.normalize_input),
            "normalize_value": bool(self.normalize_value),
        }

    def get_full_state_weights(self) -> dict[str, Any]:
        state = super().get_full_state_weights()
        state["hlc_config"] = self.hlc_checkpoint_config
        return state


EVENT_KEYS = ("et_similarity_resets", "et_fall_resets", "time_out_resets", "sim_blowups")
MEAN_KEYS = ("similarity", "reward", "reward_clip", "reward_style", "head_height")


class HLCObserver(AlgoObserver):
    """Per-epoch statistics of :class:`HighLevelEnv` infos (means over HLC env-steps, event counts), written to
    TensorBoard under ``hlc/`` and shown on a progress bar."""

    def __init__(self, progress: bool = True):
        super().__init__()
        self.progress = progress
        self.epoch_stats: list[dict[str, float]] = []
        self.total_steps = 0
        self.algo = None
        self._bar = None
        self._clear()

    def _clear(self) -> None:
        self._sums: dict[str, float] = defaultdict(float)
        self._steps = 0

    def after_init(self, algo) -> None:
        self.algo = algo
        if self.progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=algo.max_epochs, desc="HLC training", unit="epoch")

    def process_infos(self, infos: dict, done_indices) -> None:
        if not isinstance(infos, dict) or "similarity" not in infos:
            return
        n = infos["similarity"].numel()
        for key in MEAN_KEYS:
            self._sums[key] += float(infos[key].float().sum())
        for key in EVENT_KEYS:
            self._sums[key] += float(infos[key])
        self._steps += n

    def after_print_stats(self, frame: int, epoch_num: int, total_time: float) -> None:
        steps = max(self._steps, 1)
        self.total_steps += self._steps
        stats: dict[str, float] = {"epoch": epoch_num, "hlc_env_steps": self.total_steps, "wall_time_s": total_time}
        stats.update({key: self._sums[key] / steps for key in MEAN_KEYS})
        stats.update({key: self._sums[key] for key in EVENT_KEYS})
        self.epoch_stats.append(stats)
        writer = getattr(self.algo, "writer", None)
        if writer is not None:
            for key, value in stats.items():
                if key != "epoch":
                    writer.add_scalar(f"hlc/{key}", value, epoch_num)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(sim=f"{stats['similarity']:.3f}", rew=f"{stats['reward']:.3f}",
                                  et=int(stats["et_similarity_resets"]), fall=int(stats["et_fall_resets"]))
        self._clear()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


@dataclass
class TrainResult:
    """Output of :func:`train_hlc`: checkpoint paths, per-epoch statistics, provenance record."""

    checkpoint: Path
    initial_checkpoint: Path
    out_dir: Path
    epoch_stats: pd.DataFrame
    provenance: dict[str, Any] = field(default_factory=dict)


def train_hlc(
    goal: Goal,
    llc_checkpoint: str | Path,
    scale: str = "smoke",
    out_dir: str | Path = "runs/hlc",
    seed: int = 0,
    num_envs: int | None = None,
    max_epochs: int | None = None,
    env_config: HLCEnvConfig | None = None,
    motion_lib=None,
    device: str | None = None,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train π_H toward ``goal`` on the frozen LLC at ``llc_checkpoint`` (Algorithm 1).

    Writes to ``out_dir``: ``initial.pth`` (the untrained policy, for before/after comparisons), ``hlc.pth`` (the
    final policy; rl-games checkpoint with the observation and value normalisers and ``hlc_config``), rl-games'
    periodic checkpoints and TensorBoard summaries under ``runs/``, ``epoch_stats.csv`` and ``provenance.json``.
    ``env_config`` (default :class:`HLCEnvConfig`) sets the episodes, reward and early termination; its
    ``num_envs``, ``seed`` and ``device`` are replaced by this function's (``num_envs`` default: the scale's).
    ``overrides`` go into the rl-games ``config`` section (e.g. ``{"learning_rate": 1e-3}``), except ``units`` and
    ``init_log_std``, which change the network (see :func:`hlc_config`).
    """
    from rl_games.torch_runner import Runner

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    llc_checkpoint = Path(llc_checkpoint)
    prof = SCALE_PROFILES.get(scale)
    if prof is None:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    num_envs = num_envs or prof.num_envs
    device = device or ("cuda:0" if scale == "paper" and torch.cuda.is_available() else "cpu")
    env_cfg = replace(env_config or HLCEnvConfig(), num_envs=num_envs, seed=seed, device=device)
    clip_weights = getattr(goal, "clip_weights", "none (goal without CLIP)")
    hlc_info = {"goal": goal.description, "goal_spec": getattr(goal, "spec", None),
                "llc_checkpoint": str(llc_checkpoint.resolve()), "clip_weights": clip_weights, "scale": scale,
                "seed": seed, "env": _jsonable(asdict(env_cfg))}
    prov = Provenance("anyskill.hlc.train", config=hlc_info, seed=seed, device=device, clip_weights=clip_weights)

    llc = load_llc(llc_checkpoint, device=device)
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()
    register_hlc_env(ENV_NAME, lambda **_: HighLevelEnv(env_cfg, llc, goal, motion_lib))

    observer = HLCObserver(progress=progress)
    runner = Runner(observer)
    runner.algo_factory.register_builder(ALGO_NAME, lambda **kwargs: HLCAgent(**kwargs))
    runner.load(hlc_config(scale, num_envs, device, seed, str(out / "runs"), "hlc", max_epochs, hlc_info, overrides))
    torch.manual_seed(seed)  # rl-games seeds only when seed != 0
    try:
        agent: HLCAgent = runner.algo_factory.create(ALGO_NAME, base_name="run", params=runner.params)
        agent.save(str(out / "initial"))
        agent.train()
        agent.save(str(out / "hlc"))
    finally:
        observer.close()
    stats = pd.DataFrame(observer.epoch_stats)
    prov.finish()
    prov.write_csv(stats, out / "epoch_stats.csv")
    prov.write_json({"final_checkpoint": str(out / "hlc.pth")}, out / "provenance.json")
    return TrainResult(out / "hlc.pth", out / "initial.pth", out, stats, prov.as_dict())


def _jsonable(value: Any) -> Any:
    """Dataclass dicts -> plain JSON types (tuples to lists, other objects to str)."""
    return json.loads(json.dumps(value, default=str))
