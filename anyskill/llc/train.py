"""Training entry point of the low-level controller: :func:`train_llc` (CLI ``anyskill train-llc``).

Builds the CALM training env (a :class:`HumanoidEnv` on the motion library of a manifest, hybrid
reference-state init, a fall-state bank and recovery episodes, as CALM's get-up training; facts §2.5),
registers env and agent with rl-games and runs its ``Runner``. Everything lands in ``out_dir``::

    out_dir/nn/last_<name>_ep_<E>_rew_<r>.pth   checkpoints every ``save_frequency`` epochs and at the end
    out_dir/summaries/                          TensorBoard (rl-games losses and ``calm/*``: disc loss,
                                                disc accuracy on demo and on agent windows, episode
                                                length, style reward, encoder terms)
    out_dir/train_info.json                     config, data, epochs, samples, wall time (updated per epoch)

rl-games' reward-based "best" checkpoints are off: the adversarial style reward is not comparable
across epochs (the discriminator changes), so the newest checkpoint is the one to use.

Resuming (``resume=<checkpoint>``) restores weights, normalisers (policy obs, value, AMP frames), optimiser
state, epoch and sample counters, and — from the ``.resume.pt`` file the agent keeps next to the newest checkpoint
— the replay buffer, every random generator, the physics of every env and the rollout state, so that a resumed
run continues exactly as the uninterrupted one would have (CPU backend; see :mod:`anyskill.llc.agent`).
"""

from __future__ import annotations

import json
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from anyskill.llc.agent import CALMAgent
from anyskill.llc.registry import ALGO_NAME, SCALES, calm_config, register_calm

ENV_NAME = "anyskill_llc_humanoid"

DEFAULT_NUM_ENVS = {"smoke": 8, "laptop": 64, "paper": 4096}
CLIP_WEIGHTS = ("manifest", "uniform")


@dataclass
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
    clip_weights: str = "manifest"
    """how clips are drawn for latents and reference starts: the manifest's weights, or "uniform" (every clip
    alike; an option of ours for small budgets, where the manifest's category-balanced weights give the hard
    acrobatic and running clips a third of the samples)."""

    def __post_init__(self) -> None:
        if self.clip_weights not in CLIP_WEIGHTS:
            raise ValueError(f"clip_weights must be one of {CLIP_WEIGHTS}, got {self.clip_weights!r}")


def default_env_settings(scale: str) -> LLCEnvSettings:
    """The env of each scale: the reference-like defaults, with clips drawn uniformly at ``laptop`` scale."""
    return LLCEnvSettings(clip_weights="uniform") if scale == "laptop" else LLCEnvSettings()


@dataclass
class TrainResult:
    """What a training run produced. ``checkpoint``: the final rl-games checkpoint (.pth);
    ``tensorboard_dir``: the run's summaries; ``epochs``: last epoch number (counted across resumes);
    ``samples``: env steps collected (across resumes); ``wall_time_s``: this run's wall time."""

    checkpoint: Path
    tensorboard_dir: Path
    out_dir: Path
    epochs: int
    samples: int
    wall_time_s: float
    epoch_stats: list[dict[str, float]] = field(default_factory=list)


def build_env_factory(motion_lib, num_envs: int, settings: LLCEnvSettings, device: str, seed: int,
                      backend: str | None = None):
    """``make_env(**env_config)`` creating the LLC training :class:`HumanoidEnv` on ``motion_lib``.

    ``backend``: "mujoco" (CPU MuJoCo) or "warp" (MuJoCo Warp on ``device``); default: warp on CUDA, else mujoco.
    """
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    backend = backend or ("warp" if device.startswith("cuda") else "mujoco")
    if backend not in ("mujoco", "warp"):
        raise ValueError(f"backend must be 'mujoco' or 'warp', got {backend!r}")

    env_options = {k: v for k, v in asdict(settings).items() if k != "clip_weights"}

    def make_env(**kwargs: Any) -> HumanoidEnv:
        cfg = EnvConfig(num_envs=num_envs, device=device, seed=int(kwargs.get("seed", seed)), **env_options)
        sim = None
        if backend == "warp":
            from anyskill.sim.warp_backend import WarpBackend

            sim = WarpBackend(num_envs, device=device)
        return HumanoidEnv(cfg, motion_lib=motion_lib, backend=sim)

    return make_env


def load_motions(motions: str | Path | None = None, device: str = "cpu", clip_weights: str = "manifest"):
    """The :class:`MotionLibrary` of a manifest (default: the bundled one) and the manifest's path; ``clip_weights``
    "uniform" replaces the manifest's weights by equal ones."""
    from anyskill.data import MANIFEST
    from anyskill.motion.library import MotionLibrary

    if clip_weights not in CLIP_WEIGHTS:
        raise ValueError(f"clip_weights must be one of {CLIP_WEIGHTS}, got {clip_weights!r}")
    path = Path(motions) if motions is not None else MANIFEST
    lib = MotionLibrary.from_manifest(path, device=device)
    if clip_weights == "uniform":
        lib = MotionLibrary(lib.clips, None, lib.categories, lib.descriptions, device=device)
    return lib, path


class TrainingMonitor:
    """Per-epoch hook of :class:`~anyskill.llc.agent.CALMAgent` (``agent.epoch_callbacks``): a tqdm bar
    with ETA over epochs and ``train_info.json`` with the counters so far (so a killed run still has them)."""

    def __init__(self, info_path: Path, info: dict[str, Any], max_epochs: int, progress: bool):
        self.info_path = info_path
        self.info = info
        self.max_epochs = max_epochs
        self.progress = progress
        self._bar = None
        self._t0 = time.perf_counter()

    def __call__(self, agent, stats: dict[str, float]) -> None:
        epoch = int(stats["epoch"])
        if self.progress and self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.max_epochs, initial=epoch - 1, desc="CALM", unit="epoch", mininterval=5.0)
        if self._bar is not None:
            postfix = {"disc_acc": stats.get("disc_accuracy"), "ep_len": stats.get("episode_length"),
                       "reward": stats.get("style_reward")}
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items() if v is not None}, refresh=False)
            self._bar.update(1)
        self.info.update(epochs=epoch, samples=int(agent.frame), wall_time_s=round(time.perf_counter() - self._t0, 1),
                         last_stats={k: round(v, 5) for k, v in stats.items()})
        self.info_path.write_text(json.dumps(self.info, indent=2) + "\n")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _checkpoint_epoch(path: Path) -> int:
    epochs = re.findall(r"_ep_(\d+)_", path.name)
    return int(epochs[-1]) if epochs else -1


def latest_checkpoint(run_dir: str | Path) -> Path:
    """The checkpoint of the highest epoch in ``run_dir/nn`` (ties: the newest file)."""
    files = sorted(Path(run_dir, "nn").glob("*.pth"), key=lambda p: (_checkpoint_epoch(p), p.stat().st_mtime))
    if not files:
        raise FileNotFoundError(f"no checkpoints (*.pth) in {Path(run_dir, 'nn')}; train with anyskill train-llc first")
    return files[-1]


def train_llc(
    scale: str = "smoke",
    motions: str | Path | None = None,
    out_dir: str | Path | None = None,
    num_envs: int | None = None,
    max_epochs: int | None = None,
    seed: int = 0,
    device: str | None = None,
    resume: str | Path | None = None,
    progress: bool = True,
    env_settings: LLCEnvSettings | None = None,
    overrides: dict[str, Any] | None = None,
    torch_threads: int | None = None,
    epoch_callbacks: list[Callable[[CALMAgent, dict[str, float]], None]] | None = None,
    backend: str | None = None,
) -> TrainResult:
    """Train the CALM low-level controller at ``scale`` ("smoke", "laptop", "paper") with rl-games.

    Args:
        motions: manifest YAML (default: the bundled ``anyskill/data/motions.yaml``).
        out_dir: run folder (default ``runs/llc_<scale>``); checkpoints in ``out_dir/nn``.
        num_envs: parallel humanoids (default smoke 8, laptop 64, paper 4096).
        max_epochs: last epoch (counted across resumes; default: the scale's).
        device: "cpu" or "cuda:0" (default: cuda for paper, else cpu).
        resume: checkpoint to continue from (weights, normalisers, optimiser, epoch, sample count).
        progress: show a tqdm bar over epochs (rl-games' per-epoch prints are then off).
        env_settings: env options (default :func:`default_env_settings` of the scale).
        overrides: merged into the rl-games ``config`` (see :func:`calm_config`).
        torch_threads: intra-op threads; default 1 on CPU (on 2 cores shared with other jobs, 2 threads were
            measured slower; ``results/bench_llc.json`` has a 2-thread case for an idle machine).
        epoch_callbacks: extra ``callback(agent, stats)`` hooks run after every epoch.
        backend: physics backend, "mujoco" (CPU) or "warp" (MuJoCo Warp on ``device``); default warp on CUDA.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {SCALES}")
    from rl_games.common.algo_observer import DefaultAlgoObserver
    from rl_games.torch_runner import Runner

    from anyskill.provenance import Provenance
    from anyskill.sim.env import register_rl_games_env

    device = device or ("cuda:0" if scale == "paper" else "cpu")
    num_envs = num_envs or DEFAULT_NUM_ENVS[scale]
    out_dir = Path(out_dir or f"runs/llc_{scale}").resolve()
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {resume} does not exist")
    threads = torch_threads or (1 if device == "cpu" else None)
    settings = env_settings or default_env_settings(scale)

    lib, manifest = load_motions(motions, clip_weights=settings.clip_weights)
    register_rl_games_env(ENV_NAME, build_env_factory(lib, num_envs, settings, device, seed, backend))
    config_overrides: dict[str, Any] = {"save_best_after": 10**9}
    if progress:
        config_overrides["print_stats"] = False
    config_overrides.update(overrides or {})
    config = calm_config(scale, num_envs, env_name=ENV_NAME, env_config={"seed": seed}, device=device, seed=seed,
                         train_dir=str(out_dir.parent), experiment_name=out_dir.name, max_epochs=max_epochs,
                         torch_threads=threads, overrides=config_overrides)
    params = config["params"]

    prov = Provenance("anyskill.llc.train", config={"scale": scale, "num_envs": num_envs}, seed=seed, device=device)
    info: dict[str, Any] = {
        "provenance": prov.as_dict(),
        "scale": scale,
        "manifest": str(manifest),
        "clips": lib.clip_names,
        "total_motion_s": round(lib.total_duration, 2),
        "num_envs": num_envs,
        "max_epochs": params["config"]["max_epochs"],
        "resumed_from": str(resume) if resume else None,
        "env": asdict(settings),
        "network": params["network"],
        "config": {k: v for k, v in params["config"].items() if k not in ("features", "reward_shaper")},
        "torch_threads": threads,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    monitor = TrainingMonitor(out_dir / "train_info.json", info, params["config"]["max_epochs"], progress)

    def make_agent(**kwargs: Any) -> CALMAgent:
        agent = CALMAgent(**kwargs)
        agent.epoch_callbacks += [monitor, *(epoch_callbacks or [])]
        return agent

    observer = DefaultAlgoObserver()
    runner = register_calm(Runner(observer))
    runner.algo_factory.register_builder(ALGO_NAME, make_agent)
    runner.load(config)
    # rl-games seeds only when seed is truthy (0 is not); seed every generator here instead
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    t0 = time.perf_counter()
    try:
        runner.run({"train": True, "checkpoint": str(resume) if resume else None})
    finally:
        monitor.close()
    wall = time.perf_counter() - t0
    agent = observer.algo
    agent.writer.close()  # rl-games leaves the TensorBoard writer open (its buffer flushes every 120 s)
    return TrainResult(
        checkpoint=latest_checkpoint(out_dir),
        tensorboard_dir=Path(agent.summaries_dir),
        out_dir=out_dir,
        epochs=int(agent.epoch_num),
        samples=int(agent.frame),
        wall_time_s=round(wall, 2),
        epoch_stats=list(agent.epoch_stats),
    )
