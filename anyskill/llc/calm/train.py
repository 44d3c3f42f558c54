"""Training entry point of the low-level controller: :func:`train_llc` (CLI ``anyskill train-llc``).

Builds the CALM training env (a :class:`HumanoidEnv` on the motion library of a manifest, hybrid
reference-state init, a fall-state bank and recovery episodes, as CALM's get-up training; facts §2.5),
registers env and agent with rl-games and trains with the shared runner (:mod:`anyskill.rl.runner`). Defaults come
from the scale profile (:func:`anyskill.config.profile`). Everything lands in ``out_dir``::

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
run continues exactly as the uninterrupted one would have (CPU backend; see :mod:`anyskill.llc.calm.resume`).

Devices: the motion library is built on ``device``, so env resets, the agent's motion windows and its networks share
it; on CUDA the physics runs on MuJoCo Warp (``backend``). ``tests/test_llc_device.py`` runs this path on a
stand-in CUDA device on the CPU.

Several processes (``torchrun``, issue 29): in a running torch.distributed group (``anyskill train-llc`` starts it
from torchrun's variables) each process builds its worlds with seed + rank on its device and the agent trains
data-parallel in rl-games' multi-GPU loop (:mod:`anyskill.llc.calm.agent`); rank 0 writes every file.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rl_games.common.algo_observer import DefaultAlgoObserver

from anyskill.config import LLCEnvSettings, profile
from anyskill.llc import distributed as ddp
from anyskill.llc.calm.agent import CALMAgent
from anyskill.llc.calm.registry import ALGO_NAME, calm_config, register_calm
from anyskill.llc.motions import load_motions
from anyskill.rl.budget import WallClockBudget
from anyskill.rl.runner import EpochProgress, TrainResult, create_agent, resolve_device
from anyskill.rl.vecenv import register_rl_games_env

ENV_NAME = "anyskill_llc_humanoid"


def build_env_factory(motion_lib, num_envs: int, settings: LLCEnvSettings, device: str, seed: int,
                      backend: str | None = None):
    """``make_env(**env_config)`` creating the LLC training :class:`HumanoidEnv` on ``motion_lib``.

    ``backend``: "mujoco" (CPU MuJoCo) or "warp" (MuJoCo Warp on ``device``); default: warp on CUDA, else mujoco.
    """
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    backend = backend or ("warp" if device.startswith("cuda") else "mujoco")
    if backend not in ("mujoco", "warp"):
        raise ValueError(f"backend must be 'mujoco' or 'warp', got {backend!r}")

    def make_env(**kwargs: Any) -> HumanoidEnv:
        cfg = EnvConfig(num_envs=num_envs, device=device, seed=int(kwargs.get("seed", seed)), **settings.env_options())
        sim = None
        if backend == "warp":
            from anyskill.sim.warp_backend import WarpBackend

            sim = WarpBackend(num_envs, device=device)
        return HumanoidEnv(cfg, motion_lib=motion_lib, backend=sim)

    return make_env


def _checkpoint_epoch(path: Path) -> int:
    epochs = re.findall(r"_ep_(\d+)_", path.name)
    return int(epochs[-1]) if epochs else -1


def run_checkpoints(run_dir: str | Path) -> list[Path]:
    """The checkpoints of ``run_dir/nn``, one per epoch (the newest file of an epoch), by epoch."""
    by_epoch: dict[int, Path] = {}
    for p in sorted(Path(run_dir, "nn").glob("*.pth"), key=lambda p: p.stat().st_mtime):
        by_epoch[_checkpoint_epoch(p)] = p
    return [by_epoch[e] for e in sorted(by_epoch)]


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
    time_budget_s: float | None = None,
    checkpoint_every_s: float | None = None,
) -> TrainResult:
    """Train the CALM low-level controller with the ``scale`` profile ("smoke", "laptop", "paper") on rl-games.

    Args:
        motions: manifest YAML (default: the bundled ``anyskill/data/motions.yaml``).
        out_dir: run folder (default ``runs/llc_<scale>``); checkpoints in ``out_dir/nn``.
        num_envs: parallel humanoids (default: the profile's; smoke 8, laptop 64, paper 4096).
        max_epochs: last epoch (counted across resumes; default: the profile's).
        device: "cpu" or "cuda:0" (default: the profile's, see :func:`anyskill.rl.runner.resolve_device`).
        resume: checkpoint to continue from (weights, normalisers, optimiser, epoch, sample count).
        progress: show a tqdm bar over epochs (rl-games' per-epoch prints are then off).
        env_settings: env options (default: the profile's :class:`~anyskill.config.LLCEnvSettings`).
        overrides: merged into the rl-games config (see :func:`~anyskill.llc.calm.registry.calm_config`).
        torch_threads: intra-op threads (default :func:`~anyskill.rl.runner.default_torch_threads`).
        epoch_callbacks: extra ``callback(agent, stats)`` hooks run after every epoch.
        backend: physics backend, "mujoco" (CPU) or "warp" (MuJoCo Warp on ``device``); default warp on CUDA.
        time_budget_s: stop cleanly after the epoch during which this many seconds of training have passed, with
            the final checkpoint written (:class:`~anyskill.rl.budget.WallClockBudget`); None: no limit.
        checkpoint_every_s: also write a checkpoint every this many seconds (None: only the profile's).
    """
    from anyskill.provenance import Provenance

    prof = profile(scale)
    device = resolve_device(device, scale)
    num_envs = num_envs or prof.llc.num_envs
    out_dir = Path(out_dir or f"runs/llc_{scale}").resolve()
    if resume is not None and not Path(resume).is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {resume} does not exist")
    settings = env_settings or prof.llc.env

    # on the training device: the env's reference states and the agent's windows are made where they are used
    lib, manifest = load_motions(motions, device=device, motion_weights=settings.motion_weights)
    seed_here = ddp.rank_seed(seed)  # data-parallel (issue 29): each process its own worlds and draws
    register_rl_games_env(ENV_NAME, build_env_factory(lib, num_envs, settings, device, seed_here, backend))
    config = calm_config(scale, num_envs, env_name=ENV_NAME, env_config={"seed": seed_here}, device=device,
                         seed=seed_here, train_dir=str(out_dir.parent), experiment_name=out_dir.name,
                         max_epochs=max_epochs, torch_threads=torch_threads,
                         print_stats=prof.print_stats and not progress, overrides=overrides)
    params = config["params"]

    prov = Provenance("anyskill.llc.calm.train", config={"scale": scale, "num_envs": num_envs}, seed=seed,
                      device=device)
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
        "torch_threads": params["torch_threads"],
        "processes": ddp.world_size(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    monitor = EpochProgress("CALM", params["config"]["max_epochs"], progress, out_dir / "train_info.json", info,
                            postfix={"disc_acc": "disc_accuracy", "ep_len": "episode_length", "reward": "style_reward"})

    budget = WallClockBudget(time_budget_s, checkpoint_every_s)
    if time_budget_s is not None or checkpoint_every_s is not None:
        info.update(time_budget_s=time_budget_s, checkpoint_every_s=checkpoint_every_s)

    def make_agent(**kwargs: Any) -> CALMAgent:
        agent = CALMAgent(**kwargs)
        agent.epoch_callbacks += [lambda a, stats: monitor.update(int(stats["epoch"]), a.frame, stats),
                                  *(epoch_callbacks or []), budget]
        return agent

    register_calm()
    t0 = time.perf_counter()
    budget.restart()  # the budget counts training, not the set-up above
    try:
        agent = create_agent(config, ALGO_NAME, make_agent, DefaultAlgoObserver(), seed_here)
        if resume is not None:
            agent.restore(str(resume))
        agent.train()
    finally:
        monitor.close()
    if agent.writer is not None:  # rank 0's only under torchrun
        agent.writer.close()  # rl-games leaves the TensorBoard writer open (its buffer flushes every 120 s)
    return TrainResult(
        checkpoint=latest_checkpoint(out_dir),
        out_dir=out_dir,
        tensorboard_dir=Path(agent.summaries_dir),
        epochs=int(agent.epoch_num),
        samples=int(agent.frame),
        wall_time_s=round(time.perf_counter() - t0, 2),
        epoch_stats=list(agent.epoch_stats),
        provenance=prov.as_dict(),
    )
