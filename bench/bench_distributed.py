"""Scaling efficiency of data-parallel tracker training (issue 29): samples/s of N processes under torchrun (gloo,
one MuJoCo thread and one torch thread each) against N times one process of the same size, run in the same
invocation, alternating, so that both see the same machine.

    efficiency = samples_per_s(N processes) / (N * samples_per_s(1 process))

Each run trains the tracker of the tracking route (``route_profile(--scale)``: laptop = 256 humanoids per process,
horizon 32, 4 epochs of 512-sample minibatches) for ``--iterations`` iterations with
``tests/ddp_tracker_worker.py``; the first iteration (warm-up) is not counted. Samples count every process; the
processes' gradients, normaliser, KL and statistics are all-reduced (gloo) every minibatch / iteration, which is
what the efficiency measures beside the shared CPU. ``cpu_efficiency`` divides samples per CPU second of the
processes (their own CPU time, summed) instead: the cost of the data-parallel work itself, whatever else the
machine runs; the wall-clock efficiency also pays for waiting on a partner that another job delayed.

    .venv/bin/python bench/bench_distributed.py                  # -> results/bench_distributed.json (~4 min)
    .venv/bin/python bench/bench_distributed.py --quick --no-write   # smoke sizes: a check that it runs
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "tests" / "ddp_tracker_worker.py"


def run_once(processes: int, scale: str, iterations: int, envs: int | None) -> dict:
    """One training run of ``processes`` processes; its run.json plus the launcher's wall time."""
    with tempfile.TemporaryDirectory(prefix="bench_ddp_") as tmp:
        out = Path(tmp) / "run"
        launcher = [sys.executable] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
        cmd = [*launcher, str(WORKER), str(out), "--scale", scale, "--iterations", str(iterations),
               "--no-keep-weights", *(["--envs", str(envs)] if envs else [])]
        env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}
        env.pop("ANYSKILL_DDP_MIRROR", None)
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-4000:]}")
        run = json.loads((out / "run.json").read_text())
        run["launcher_wall_s"] = round(time.perf_counter() - t0, 1)
        run["samples_per_s_steady"] = round(run["samples_per_s_steady"], 1)
        run["samples_per_cpu_s"] = round(run["samples_steady"] / run["cpu_s_steady"], 1)
        return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--scale", default="laptop", help="route profile of the sizes (default laptop)")
    p.add_argument("--envs", type=int, help="humanoids per process (default: the profile's)")
    p.add_argument("--iterations", type=int, default=6, help="iterations per run; the first is not counted")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds of (1 process, N processes)")
    p.add_argument("--quick", action="store_true", help="smoke sizes, 3 iterations, 1 round")
    p.add_argument("--note", default="", help="how the machine was loaded (shared? what else ran?)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_distributed.json")
    args = p.parse_args()
    if args.quick:
        args.scale, args.iterations, args.rounds = "smoke", 3, 1
    from anyskill.provenance import Provenance

    prov = Provenance("bench/bench_distributed.py", config={
        "processes": args.processes, "scale": args.scale, "envs_per_process": args.envs,
        "iterations": args.iterations, "rounds": args.rounds, "threads_per_process": 1, "backend": "gloo"})
    load_before = os.getloadavg()
    rounds = []
    for r in range(args.rounds):
        single = run_once(1, args.scale, args.iterations, args.envs)
        multi = run_once(args.processes, args.scale, args.iterations, args.envs)
        eff = multi["samples_per_s_steady"] / (args.processes * single["samples_per_s_steady"])
        cpu_eff = multi["samples_per_cpu_s"] / single["samples_per_cpu_s"]
        rounds.append({"round": r + 1, "single": single, "multi": multi, "efficiency": round(eff, 3),
                       "cpu_efficiency": round(cpu_eff, 3), "load_average_after": os.getloadavg()})
        print(f"round {r + 1}: 1 process {single['samples_per_s_steady']:.0f} samples/s, {args.processes} processes "
              f"{multi['samples_per_s_steady']:.0f} samples/s -> efficiency {eff:.2f} (per CPU second "
              f"{cpu_eff:.2f}); load average {os.getloadavg()[0]:.2f}", flush=True)
    best_single = max(x["single"]["samples_per_s_steady"] for x in rounds)
    best_multi = max(x["multi"]["samples_per_s_steady"] for x in rounds)
    effs = sorted(x["efficiency"] for x in rounds)
    summary = {"single_samples_per_s": best_single, "multi_samples_per_s": best_multi,
               "efficiency_best_runs": round(best_multi / (args.processes * best_single), 3),
               "efficiency_per_round": [x["efficiency"] for x in rounds],
               "efficiency_median_round": effs[len(effs) // 2],
               "cpu_efficiency_per_round": [x["cpu_efficiency"] for x in rounds]}
    print(f"scaling efficiency, {args.processes} processes vs {args.processes} x 1 (best runs): "
          f"{summary['efficiency_best_runs']:.2f}; per round {summary['efficiency_per_round']}")
    if args.no_write:
        return
    machine = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
               "load_average_before": load_before, "load_average_at_end": os.getloadavg()}
    import torch

    machine["torch"] = torch.__version__
    prov.finish().write_json({"summary": summary, "rounds": rounds, "machine_info": machine, "note": args.note},
                             args.out)
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
