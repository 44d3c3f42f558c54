"""The collectives of anyskill.llc.distributed on CUDA tensors under NCCL, one process per GPU
(tests/test_distributed.py runs it under torchrun where GPUs exist; with one GPU, one process).

    torchrun --standalone --nproc-per-node N tests/ddp_nccl_worker.py OUT

Each process writes ``OUT/rank<r>.json``: its device, the averaged gradient, normaliser and flags.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from anyskill.llc import distributed as ddp
from anyskill.llc.nets import RunningNorm


def main() -> None:
    out = Path(sys.argv[1])
    dev = ddp.init_from_env("cuda")
    if not ddp.is_distributed():  # one GPU: a group of one, still through NCCL
        torch.cuda.set_device(0)
        dist.init_process_group("nccl", init_method="tcp://127.0.0.1:29531", rank=0, world_size=1)
        dev = "cuda:0"
    torch.manual_seed(ddp.rank())
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ELU(), torch.nn.Linear(16, 2)).to(dev)
    ddp.broadcast_module(net)
    x = torch.randn(32, 8, device=dev) + ddp.rank()
    net(x).square().mean().backward()
    ddp.sync_gradients(net)
    norm = RunningNorm(8).to(dev)
    ddp.update_norm(norm, x)
    mean, var = norm.mean.clone(), norm.var.clone()
    ddp.average_running_stats(mean, var)
    flag = ddp.broadcast_flag(ddp.rank() == 0)
    ddp.barrier()
    record = {"device": dev, "backend": dist.get_backend(), "world": ddp.world_size(), "flag": flag,
              "count": float(norm.count), "weights": [float(p.detach().double().sum()) for p in net.parameters()],
              "grads": [float(p.grad.double().sum()) for p in net.parameters()],
              "norm_mean": norm.mean.tolist(), "mean_rank": float(ddp.all_reduce_mean(
                  torch.tensor(float(ddp.rank()), device=dev)))}
    (out / f"rank{ddp.rank()}.json").write_text(json.dumps(record))
    ddp.shutdown()


if __name__ == "__main__":
    main()
