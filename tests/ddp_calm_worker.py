"""A few CALM epochs at smoke sizes, in one process or as one of several under torchrun (tests/test_distributed.py).

    torchrun --standalone --nproc-per-node 2 tests/ddp_calm_worker.py OUT --epochs 3

Every process writes ``OUT/weights_rank<r>.pt``: its model's state (weights and normalisers) after every epoch's
update; rank 0 writes the run folder ``OUT/run`` (checkpoints, TensorBoard, train_info.json).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from anyskill.llc import distributed as ddp
from anyskill.llc.calm.agent import CALMAgent
from anyskill.llc.calm.train import train_llc


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    ddp.init_from_env("cpu")
    states: list[dict[str, torch.Tensor]] = []
    train_epoch = CALMAgent.train_epoch

    def recorded(agent: CALMAgent):
        result = train_epoch(agent)
        states.append({k: v.detach().cpu().clone() for k, v in agent.model.state_dict().items()})
        return result

    CALMAgent.train_epoch = recorded  # type: ignore[method-assign]
    train_llc(scale="smoke", out_dir=args.out / "run", max_epochs=args.epochs, device="cpu", progress=False)
    torch.save(states, args.out / f"weights_rank{ddp.rank()}.pt")
    ddp.shutdown()


if __name__ == "__main__":
    main()
