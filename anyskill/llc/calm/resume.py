"""Exact resume of CALM training: what a checkpoint does not hold but an uninterrupted run would continue from.

Next to the newest rl-games checkpoint ``<name>.pth`` (weights, normalisers, optimiser, counters) the agent writes
``<name>.pth.resume.pt`` (:data:`RESUME_SUFFIX`): the env's physics snapshot, the last observations and dones, the
latent schedule, the replay buffer and every random generator (torch CPU and CUDA, numpy, Python). Restoring both
continues training as if it had not stopped (tested bit for bit on the CPU backend). Only the newest checkpoint of a
folder keeps its resume file.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rl_games.algos_torch import torch_ext
from torch import Tensor

from anyskill.llc.calm.latents import LatentSchedule
from anyskill.llc.calm.ppo import SampleBuffer

RESUME_SUFFIX = ".resume.pt"


def resume_state(env: Any, obs: Tensor, dones: Tensor, schedule: LatentSchedule, replay: SampleBuffer
                 ) -> dict[str, Any]:
    """Everything exact resumption needs besides the checkpoint; raises NotImplementedError for an env without
    ``snapshot()``."""
    snapshot = getattr(env, "snapshot", None)
    if snapshot is None:
        raise NotImplementedError(f"{type(env).__name__} has no snapshot()")
    return {
        "env": snapshot(),
        "obs": obs.clone(),
        "dones": dones.clone(),
        "rollout": schedule.state_dict(),
        "replay": replay.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }


def apply_resume_state(state: dict[str, Any], env: Any, schedule: LatentSchedule, replay: SampleBuffer,
                       device: str | torch.device) -> tuple[dict[str, Tensor], Tensor]:
    """Restore env, latent schedule, replay buffer and generators from :func:`resume_state`; returns the
    observations and dones to continue from, on ``device``."""
    env.restore(state["env"])
    schedule.load_state_dict(state["rollout"])
    replay.load_state_dict(state["replay"])
    rng = state["rng"]
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return {"obs": state["obs"].to(device)}, state["dones"].to(device)


def write_resume_file(checkpoint: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` next to ``checkpoint`` (``<checkpoint>.resume.pt``), removing the folder's older ones."""
    path = Path(checkpoint)
    for old in path.parent.glob(f"*{RESUME_SUFFIX}"):
        old.unlink()
    torch_ext.safe_save(state, str(path) + RESUME_SUFFIX)


def read_resume_file(checkpoint: str | Path) -> dict[str, Any] | None:
    """The resume state next to ``checkpoint``, or None (with a warning: the run then resumes from weights,
    normalisers and optimiser with fresh episodes and an empty replay buffer)."""
    side = Path(str(checkpoint) + RESUME_SUFFIX)
    if side.is_file():
        return torch_ext.safe_load(str(side))
    warnings.warn(f"{checkpoint}: no {side.name} next to it; resuming from weights, normalisers and optimiser with "
                  "fresh episodes and an empty replay buffer (not an exact continuation)", RuntimeWarning,
                  stacklevel=3)
    return None
