"""Data-parallel training of the low-level routes on several processes (``torchrun --nproc-per-node N``).

torch.distributed does the work: NCCL between GPUs, gloo between CPU processes. Each process steps its own worlds
with its own seed (:func:`rank_seed`), and the processes keep one model:

* the initial weights are rank 0's (:func:`broadcast_module`);
* every gradient is averaged over the processes before the optimiser steps (:func:`sync_gradients`: one
  all-reduce of all gradients flattened, as rl-games' multi-GPU agent does), so every process takes the same step;
* running observation normalisers are updated with the moments of every process's batch (:func:`update_norm`);
* scalars that steer training (the PPO KL behind the adaptive learning rate, the per-clip failure rates that weight
  the clips, the logged statistics) are averaged (:func:`all_reduce_mean`), and decisions taken on the clock (stop
  after a time budget) are rank 0's (:func:`broadcast_flag`);
* rank 0 alone writes checkpoints, curves and logs (:func:`is_main`); the others wait for it (:func:`barrier`).

With torch.distributed not initialised (a plain ``python`` / ``anyskill`` run) every helper is the identity: one
process, rank 0 of 1, the single-process code path unchanged. :func:`init_from_env` starts the process group from
the variables torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)::

    torchrun --standalone --nproc-per-node 2 -m anyskill.cli train-llc --route tracking --scale laptop   # 2 CPU procs
    torchrun --standalone --nproc-per-node 4 -m anyskill.cli train-llc --route tracking --device cuda   # 4 GPUs

``ANYSKILL_DDP_MIRROR=1`` gives every process rank 0's seed (the same worlds everywhere): the data-parallel update
then equals the single-process one, which the tests use to check the averaging; it is a check, not a training mode.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from anyskill.llc.nets import RunningNorm

MIRROR_ENV = "ANYSKILL_DDP_MIRROR"


def _dist():
    import torch.distributed as dist

    return dist


def is_distributed() -> bool:
    """Whether a torch.distributed process group is running (torchrun, :func:`init_from_env`)."""
    dist = _dist()
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without torch.distributed)."""
    return _dist().get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without torch.distributed)."""
    return _dist().get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Whether this process writes checkpoints, curves and logs (rank 0)."""
    return rank() == 0


def rank_seed(seed: int) -> int:
    """This process's seed: ``seed + rank`` (its own worlds and draws), or ``seed`` with ``ANYSKILL_DDP_MIRROR=1``."""
    return seed if os.environ.get(MIRROR_ENV) == "1" else seed + rank()


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """The mean of ``tensor`` over the processes (a new tensor; ``tensor`` itself without torch.distributed)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    _dist().all_reduce(out)
    return out / world_size()


def sync_gradients(module: nn.Module | Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``module`` (or of the parameters given) over the processes, in place: one
    all-reduce of every gradient flattened into one buffer. Parameters without a gradient are left out (the same
    ones on every process: all run the same graph)."""
    if not is_distributed():
        return
    params = module.parameters() if isinstance(module, nn.Module) else module
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    _dist().all_reduce(flat)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def average_running_stats(mean: Tensor, var: Tensor) -> None:
    """Replace running statistics (mean (D,), population variance (D,) of equal counts on every process) by those
    of all processes together, in place: the mean of the means, and the variance about it."""
    if not is_distributed():
        return
    with torch.no_grad():
        m = all_reduce_mean(mean)
        second = all_reduce_mean(var + mean.square())
        mean.copy_(m)
        var.copy_((second - m.square()).clamp_min(0.0))


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers (normaliser statistics included) into every process's ``module``."""
    if not is_distributed():
        return
    dist = _dist()
    with torch.no_grad():
        for t in module.state_dict().values():
            if isinstance(t, Tensor):
                dist.broadcast(t, src)


def broadcast_flag(flag: bool, src: int = 0) -> bool:
    """Rank ``src``'s ``flag`` on every process (a decision taken on rank ``src``'s clock)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    _dist().broadcast(t, src)
    return bool(t.item() > 0.5)


def barrier() -> None:
    """Wait until every process gets here (e.g. until rank 0 has written a checkpoint the others read)."""
    if is_distributed():
        dist = _dist()
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[torch.cuda.current_device()])
        else:
            dist.barrier()


def batch_moments(x: Tensor) -> tuple[Tensor, Tensor, int]:
    """Mean (D,), population variance (D,) and count of the rows of ``x`` (N, D) of every process together (two
    all-reduces: the mean first, then the spread around it, as the parallel-variance formula)."""
    n_local = x.shape[0]
    m, v = x.mean(0), x.var(0, unbiased=False)
    if not is_distributed():
        return m, v, n_local
    dist = _dist()
    head = torch.cat([m * n_local, torch.tensor([float(n_local)], device=x.device)])
    dist.all_reduce(head)
    n = head[-1]
    mean = head[:-1] / n
    spread = n_local * (v + (m - mean).square())
    dist.all_reduce(spread)
    return mean, spread / n, int(round(float(n)))


def update_norm(norm: RunningNorm, x: Tensor) -> None:
    """``norm.update(x)`` with the batch of every process: the same statistics everywhere (exactly
    ``norm.update(x)`` without torch.distributed)."""
    if not is_distributed():
        norm.update(x)
        return
    mean, var, n = batch_moments(x)
    norm.update_moments(mean, var, n)


def _collective_device() -> torch.device:
    """Where small tensors for collectives live: the current CUDA device under NCCL, else the CPU."""
    if is_distributed() and _dist().get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def launched_by_torchrun() -> bool:
    """Whether this process is one of several started by torchrun (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "cpu") -> str:
    """Start the process group from torchrun's variables when ``WORLD_SIZE`` > 1 (NCCL for a CUDA ``device``, else
    gloo) and return this process's device: ``cuda:<LOCAL_RANK>`` for CUDA, else ``device``. Without torchrun (or
    with one process) nothing starts and ``device`` comes back."""
    if not launched_by_torchrun() or is_distributed():
        return _local_device(device)
    dist = _dist()
    if device.startswith("cuda"):
        local = _local_device(device)
        torch.cuda.set_device(torch.device(local))
        dist.init_process_group("nccl")
        return local
    dist.init_process_group("gloo")
    return device


def _local_device(device: str) -> str:
    if device.startswith("cuda") and launched_by_torchrun():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return device


def shutdown() -> None:
    """End the process group (at the end of a torchrun process)."""
    if is_distributed():
        _dist().destroy_process_group()
