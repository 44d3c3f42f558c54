"""Training the high-level policy π_H with rl-games' continuous PPO (paper §3.2-3.3, facts §3.1 and §3.6).

The policy is rl-games' standard ``actor_critic`` network with separate actor and critic MLPs ([1024, 512] ReLU at
``paper`` scale), a tanh on the 64-D mean and a fixed, non-learned log-std of -2.3. The only additions to the
stock A2C agent (:class:`HLCAgent`) are freezing that log-std and storing the HLC's description (network sizes,
goal, LLC checkpoint, CLIP weights) in every checkpoint, which :func:`anyskill.hlc.policy.load_hlc` reads.

    result = train_hlc(PoseGoal.from_clip(clip), "llc.pth", scale="smoke", out_dir="runs/hlc_pose")
    result.stats  # DataFrame: similarity, reward terms, early-termination events per epoch

The sizes and PPO numbers come from the scale profile (:func:`anyskill.config.profile`); seeding, the device, the
progress bar and the result record from the shared runner (:mod:`anyskill.rl.runner`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common.algo_observer import AlgoObserver

from anyskill.config import profile
from anyskill.config.hlc import HLCEnvConfig
from anyskill.hlc.env import HighLevelEnv
from anyskill.hlc.general import GeneralHighLevelEnv, PromptSetGoal
from anyskill.hlc.goal import Goal
from anyskill.llc.controller import load_llc
from anyskill.provenance import Provenance
from anyskill.rl.runner import (
    EpochProgress,
    TrainResult,
    create_agent,
    default_torch_threads,
    resolve_device,
    rl_games_config,
)
from anyskill.rl.vecenv import register_rl_games_env

ALGO_NAME = "anyskill_hlc"
ENV_NAME = "anyskill_hlc_env"


def hlc_config(scale: str, num_envs: int | None = None, device: str | None = None, seed: int = 0,
               train_dir: str = "runs", experiment_name: str = "hlc", max_epochs: int | None = None,
               hlc_info: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None,
               general: bool = False) -> dict[str, Any]:
    """rl-games config ``{"params": ...}`` for π_H with the ``scale`` profile (:func:`anyskill.config.profile`).

    ``paper``: the reference spec_anyskill.yaml numbers (1024 envs, horizon 4, minibatch 2048, 6 mini-epochs, lr 2e-5,
    [1024, 512] MLPs; γ 0.99, λ 0.95, clip 0.2, critic 5, entropy 0, bounds 10, normalised input/value/advantage).
    ``laptop``: 64 envs, [256, 128]. ``smoke``: 8 envs, [64, 32], 3 epochs. ``overrides`` are merged into
    ``params["config"]``, except a nested ``network`` dict, which replaces fields of the profile's
    :class:`~anyskill.config.HLCNetworkSettings` (``units``, ``init_log_std``). ``general``: the general
    (multi-prompt) policy's PPO numbers (:attr:`HLCProfile.general_ppo`; ``paper``: horizon 32, minibatch 16384,
    800 epochs).
    """
    prof = profile(scale).hlc
    num_envs = num_envs or prof.num_envs
    device = resolve_device(device, scale)
    ppo = prof.general_ppo if general else prof.ppo
    ppo = ppo if max_epochs is None else replace(ppo, max_epochs=max_epochs)
    overrides = dict(overrides or {})
    network = replace(prof.network, **overrides.pop("network", {}))
    config = rl_games_config(
        algo=ALGO_NAME, model="continuous_a2c_logstd", network=network.to_params(), ppo=ppo, num_envs=num_envs,
        env_name=ENV_NAME, device=device, seed=seed, train_dir=train_dir, experiment_name=experiment_name,
        torch_threads=default_torch_threads(device), print_stats=False,  # HLCObserver shows the epoch stats
        extra={"ppo_device": device, "seq_length": 1,  # no RNN; rl-games still requires batch % seq_length == 0
               "hlc": dict(hlc_info or {})},
    )
    config["params"]["config"].update(overrides)
    return config


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


EpochCallback = Callable[[int, int, dict[str, float]], None]
"""``on_epoch(epoch, max_epochs, stats)`` of :func:`train_hlc`: called after each epoch (epochs counted from 1)."""

EVENT_KEYS = ("et_similarity_resets", "et_fall_resets", "time_out_resets", "sim_blowups")
MEAN_KEYS = ("similarity", "reward", "reward_clip", "reward_latent", "head_height")


class HLCObserver(AlgoObserver):
    """Per-epoch statistics of :class:`HighLevelEnv` infos (means over HLC env-steps, event counts), written to
    TensorBoard under ``hlc/`` and passed to an :class:`~anyskill.rl.runner.EpochProgress` and to ``on_epoch``
    (``on_epoch(epoch, max_epochs, stats)``, see :func:`train_hlc`)."""

    def __init__(self, monitor: EpochProgress, on_epoch: EpochCallback | None = None):
        super().__init__()
        self.monitor = monitor
        self.on_epoch = on_epoch
        self.epoch_stats: list[dict[str, float]] = []
        self.total_steps = 0
        self.algo = None
        self._clear()

    def _clear(self) -> None:
        self._sums: dict[str, float] = defaultdict(float)
        self._steps = 0

    def after_init(self, algo) -> None:
        self.algo = algo

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
        self.monitor.update(epoch_num, frame, stats)
        self._clear()
        if self.on_epoch is not None:
            self.on_epoch(epoch_num, self.monitor.max_epochs, stats)


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
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train π_H toward ``goal`` on the frozen LLC at ``llc_checkpoint`` (Algorithm 1); with a
    :class:`~anyskill.hlc.general.PromptSetGoal` the general policy, conditioned on each env's prompt
    (:class:`~anyskill.hlc.general.GeneralHighLevelEnv`).

    Writes to ``out_dir``: ``initial.pth`` (the untrained policy, for before/after comparisons), ``hlc.pth`` (the
    final policy; rl-games checkpoint with the observation and value normalisers and ``hlc_config``), rl-games'
    periodic checkpoints and TensorBoard summaries under ``runs/``, ``train_info.json`` (updated per epoch),
    ``epoch_stats.csv`` and ``provenance.json``. ``env_config`` (default :class:`HLCEnvConfig`) sets the episodes,
    reward and early termination; its ``num_envs``, ``seed`` and ``device`` are replaced by this function's
    (``num_envs`` default: the profile's; ``device``: see :func:`anyskill.rl.runner.resolve_device`).
    ``overrides`` go into the rl-games ``config`` section (e.g. ``{"learning_rate": 1e-3}``), except a nested
    ``network`` dict (``units``, ``init_log_std``), which changes the network (see :func:`hlc_config`).
    ``on_epoch(epoch, max_epochs, stats)`` is called after every epoch with that epoch's statistics (e.g. to drive a
    progress widget); an exception it raises stops the training and propagates (no final ``hlc.pth`` is written).
    """
    prof = profile(scale)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    llc_checkpoint = Path(llc_checkpoint)
    num_envs = num_envs or prof.hlc.num_envs
    device = resolve_device(device, scale)
    env_cfg = replace(env_config or HLCEnvConfig(), num_envs=num_envs, seed=seed, device=device)
    clip_weights = getattr(goal, "clip_weights", "none (goal without CLIP)")
    hlc_info = {"goal": goal.description, "goal_spec": getattr(goal, "spec", None),
                "llc_checkpoint": str(llc_checkpoint.resolve()), "clip_weights": clip_weights, "scale": scale,
                "seed": seed, "env": _jsonable(asdict(env_cfg))}
    if isinstance(goal, PromptSetGoal):
        hlc_info["condition_dim"] = goal.condition_dim  # the policy reads (obs, CLIP text feature of its prompt)
    prov = Provenance("anyskill.hlc.train", config=hlc_info, seed=seed, device=device, clip_weights=clip_weights)

    llc = load_llc(llc_checkpoint, device=device)
    if motion_lib is None:
        from anyskill.data import default_library

        motion_lib = default_library()

    def make_env(**_) -> HighLevelEnv | GeneralHighLevelEnv:
        if isinstance(goal, PromptSetGoal):
            return GeneralHighLevelEnv(env_cfg, llc, goal, motion_lib)
        return HighLevelEnv(env_cfg, llc, goal, motion_lib)

    register_rl_games_env(ENV_NAME, make_env)
    config = hlc_config(scale, num_envs, device, seed, str(out / "runs"), "hlc", max_epochs, hlc_info, overrides,
                        general=isinstance(goal, PromptSetGoal))
    monitor = EpochProgress("HLC training", config["params"]["config"]["max_epochs"], progress,
                            out / "train_info.json", {"provenance": prov.as_dict()},
                            postfix={"sim": "similarity", "rew": "reward", "et": "et_similarity_resets",
                                     "fall": "et_fall_resets"})
    observer = HLCObserver(monitor, on_epoch)
    t0 = time.perf_counter()
    try:
        agent: HLCAgent = create_agent(config, ALGO_NAME, lambda **kwargs: HLCAgent(**kwargs), observer, seed)
        agent.save(str(out / "initial"))
        agent.train()
        agent.save(str(out / "hlc"))
    finally:
        monitor.close()
    agent.writer.close()  # rl-games leaves the TensorBoard writer open (its buffer flushes every 120 s)
    prov.finish()
    prov.write_csv(pd.DataFrame(observer.epoch_stats), out / "epoch_stats.csv")
    prov.write_json({"final_checkpoint": str(out / "hlc.pth")}, out / "provenance.json")
    return TrainResult(checkpoint=out / "hlc.pth", out_dir=out, tensorboard_dir=Path(agent.summaries_dir),
                       epochs=int(agent.epoch_num), samples=int(agent.frame),
                       wall_time_s=round(time.perf_counter() - t0, 2), epoch_stats=observer.epoch_stats,
                       initial_checkpoint=out / "initial.pth", provenance=prov.as_dict())


def _jsonable(value: Any) -> Any:
    """Dataclass dicts -> plain JSON types (tuples to lists, other objects to str)."""
    return json.loads(json.dumps(value, default=str))
