"""A few iterations of the tracker at smoke sizes, in one process or as one of several under torchrun (the
data-parallel tests of tests/test_distributed.py and bench/bench_distributed.py run it).

    python tests/ddp_tracker_worker.py OUT --iterations 4                            # one process
    torchrun --standalone --nproc-per-node 2 tests/ddp_tracker_worker.py OUT --iterations 4   # two (gloo)

Every process writes ``OUT/weights_rank<r>.pt``: its tracker's state (weights and normaliser) after every
iteration; rank 0 writes ``OUT/tracker_curve.csv`` and ``OUT/run.json`` (samples, wall time, processes).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from anyskill.config.tracking import route_profile
from anyskill.llc import distributed as ddp
from anyskill.llc.tracking.tracker import train_tracker


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out", type=Path)
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--scale", default="smoke", help="route profile of the sizes (smoke | laptop)")
    p.add_argument("--envs", type=int, help="worlds per process (default: the profile's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep-weights", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--resume", action="store_true", help="continue from OUT/tracker.pth for --iterations more")
    args = p.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(1)
    ddp.init_from_env("cpu")
    prof = route_profile(args.scale)
    track = replace(prof.track, seed=args.seed, num_threads=1, **({"num_envs": args.envs} if args.envs else {}))
    per_iteration = track.num_envs * prof.ppo.horizon * ddp.world_size()
    resume = args.out / "tracker.pth" if args.resume else None
    done = int(torch.load(resume, weights_only=False)["samples"]) if resume is not None else 0
    ppo = replace(prof.ppo, total_samples=done + args.iterations * per_iteration, learn_threads=1,
                  checkpoint_every_s=1e9)
    from anyskill.data import default_library

    lib = default_library()
    states: list[dict[str, torch.Tensor]] = []
    cpu_s: list[float] = [time.process_time()]  # this process's CPU time at the end of every iteration

    def keep(net, row) -> None:
        cpu_s.append(time.process_time())
        if args.keep_weights:
            states.append({k: v.detach().cpu().clone() for k, v in net.state_dict().items()})

    t0 = time.perf_counter()
    run = train_tracker(lib, args.out, track, ppo, resume=resume, seed=args.seed, progress=False, on_iteration=keep)
    wall = time.perf_counter() - t0
    if args.keep_weights:
        torch.save(states, args.out / f"weights_rank{ddp.rank()}{'_resumed' if resume else ''}.pt")
    # CPU seconds of every process over the counted iterations (after the first), summed over the processes
    steady = cpu_s[-1] - cpu_s[-args.iterations] if args.iterations > 1 else cpu_s[-1] - cpu_s[0]
    cpu_total = float(ddp.all_reduce_mean(torch.tensor([steady], dtype=torch.float64))) * ddp.world_size()
    if ddp.is_main():
        (args.out / "run.json").write_text(json.dumps({
            "processes": ddp.world_size(), "samples": run.samples, "wall_s": wall,
            "iterations": len(run.curve), "num_envs_per_process": track.num_envs,
            "samples_per_s_steady": _steady(run.curve[len(run.curve) - args.iterations:]),
            "cpu_s_steady": cpu_total, "samples_steady": run.curve[-1]["samples"] - (
                run.curve[-args.iterations]["samples"] if args.iterations > 1 else 0)}))
    ddp.shutdown()


def _steady(curve: list[dict]) -> float:
    """Samples per second over the iterations after the first (the first pays for warm-up)."""
    rows = curve[1:] if len(curve) > 1 else curve
    new = [r["samples"] - (curve[k]["samples"] if len(curve) > 1 else 0) for k, r in enumerate(rows)]
    return sum(new) / sum(n / r["samples_per_s"] for n, r in zip(new, rows, strict=True))


if __name__ == "__main__":
    main()
