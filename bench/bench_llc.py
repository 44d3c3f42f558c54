"""PPO throughput of CALM training (the low-level controller) on this machine's CPU, declared as data.

For each case (scale, number of envs N, intra-op threads) it trains a few epochs with :func:`train_llc`
(after ``warmup_epochs`` that are not counted) and reports, per epoch of H x N samples:

* ``samples_per_s``: env steps collected per second of epoch wall time (rollout + update + CALM's
  per-epoch demo sampling and logging);
* shares of the epoch wall time: ``sim`` (``HumanoidEnv.step``: physics, observations, resets),
  ``inference`` (policy/value/discriminator/encoder forward passes and latent sampling in the rollout),
  ``learning`` (PPO + discriminator + encoder minibatch updates), ``other`` (demo/alignment windows drawn
  per epoch, replay storage, logging, checkpoints);
* ``startup_s``: motion library, fall-state bank, demo buffer fill and network construction.

    .venv/bin/python bench/bench_llc.py            # laptop config -> results/bench_llc.json (~3 minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from anyskill.llc.train import train_llc
from anyskill.provenance import Provenance

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LLCBenchCase:
    scale: str
    num_envs: int
    epochs: int = 4
    warmup_epochs: int = 1
    torch_threads: int = 1


CASES = (
    LLCBenchCase("laptop", 64),
    LLCBenchCase("laptop", 32),
    LLCBenchCase("laptop", 64, torch_threads=2),
)


def measure(case: LLCBenchCase, seed: int = 0) -> dict:
    stamps: list[float] = []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_llc(case.scale, out_dir=Path(tmp) / "bench", num_envs=case.num_envs,
                           max_epochs=case.warmup_epochs + case.epochs, seed=seed, progress=False,
                           torch_threads=case.torch_threads,
                           overrides={"save_frequency": 0, "print_stats": False},
                           epoch_callbacks=[lambda agent, stats: stamps.append(time.perf_counter())])
    stats = result.epoch_stats[case.warmup_epochs:]
    walls = [b - a for a, b in zip(stamps[case.warmup_epochs - 1:], stamps[case.warmup_epochs:])]
    first_epoch = result.epoch_stats[0]
    startup = stamps[0] - t_start - (first_epoch["play_time_s"] + first_epoch["update_time_s"])
    samples = result.samples // len(result.epoch_stats)
    wall = sum(walls)
    sim = sum(s["step_time_s"] for s in stats)
    play = sum(s["play_time_s"] for s in stats)
    learn = sum(s["update_time_s"] for s in stats)
    return {
        **asdict(case),
        "samples_per_epoch": samples,
        "epoch_wall_s": round(wall / len(walls), 3),
        "samples_per_s": round(samples * len(walls) / wall, 1),
        "share_sim": round(sim / wall, 3),
        "share_inference": round((play - sim) / wall, 3),
        "share_learning": round(learn / wall, 3),
        "share_other": round(1.0 - (play + learn) / wall, 3),
        "sim_steps_per_s_in_rollout": round(samples * len(walls) / sim, 1),
        "startup_s": round(startup, 1),
        "epoch_wall_s_each": [round(w, 3) for w in walls],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_llc.json")
    parser.add_argument("--quick", action="store_true", help="first case only, 2 epochs (a check that it runs)")
    args = parser.parse_args(argv)
    cases = [LLCBenchCase("laptop", 64, epochs=2)] if args.quick else list(CASES)
    prov = Provenance(notebook="bench/bench_llc.py", config={"cases": [asdict(c) for c in cases]})
    rows = []
    print(f"{'scale':>7} {'N':>4} {'thr':>3} {'samples/s':>10} {'epoch s':>8} {'sim':>5} {'infer':>5} {'learn':>5} {'other':>5}")
    for case in cases:
        row = measure(case)
        rows.append(row)
        print(f"{row['scale']:>7} {row['num_envs']:>4} {row['torch_threads']:>3} {row['samples_per_s']:>10.0f} "
              f"{row['epoch_wall_s']:>8.2f} {row['share_sim']:>5.2f} {row['share_inference']:>5.2f} "
              f"{row['share_learning']:>5.2f} {row['share_other']:>5.2f}", flush=True)
    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "load_average_at_end": os.getloadavg(),
    }
    path = prov.finish().write_json({"machine_info": info, "results": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
