"""End-to-end throughput of CALM training (the low-level controller) on this machine's CPU, declared as data.

For each case (scale, number of envs N, torch threads, physics threads) it trains a few epochs with
:func:`train_llc` (after ``warmup_epochs`` that are not counted) and reports:

* ``samples_per_s``: env steps collected per second of epoch wall time (rollout + update + logging);
* shares of the epoch wall time: ``sim`` (``HumanoidEnv.step``: physics, observations, resets), ``inference``
  (policy forward passes, latent sampling, the batched reward/value passes after the rollout), ``learning``
  (PPO + discriminator + encoder minibatch updates), ``other`` (logging, replay storage);
* in the same process, right after: ``env_steps_per_s``, the control steps per second of the same env alone under
  random actions (the ceiling for training), and ``env_ratio`` = env_steps_per_s / samples_per_s (1.0 = training
  costs nothing beyond the simulation).

    .venv/bin/python bench/bench_llc.py            # -> results/bench_llc.json (~3 minutes; run on an idle machine)
    .venv/bin/python bench/bench_llc.py --quick    # one short case: a check that it runs
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from anyskill.config import profile
from anyskill.llc.calm.train import build_env_factory, train_llc
from anyskill.llc.motions import load_motions
from anyskill.provenance import Provenance

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LLCBenchCase:
    scale: str
    num_envs: int
    torch_threads: int = 1
    sim_threads: int = 1
    epochs: int = 6
    warmup_epochs: int = 2
    ppo: tuple[tuple[str, int], ...] = ()
    """PPO overrides of the profile, e.g. (("minibatch_size", 2048), ("mini_epochs", 2)): fewer, larger steps."""


CASES = (
    LLCBenchCase("laptop", 64),
    LLCBenchCase("laptop", 64, torch_threads=2),
    LLCBenchCase("laptop", 64, torch_threads=2, sim_threads=2),
    LLCBenchCase("laptop", 128, torch_threads=2, sim_threads=2),
    # the throughput end of the trade-off: 2 large PPO steps per epoch instead of the profile's 16 small ones
    LLCBenchCase("laptop", 128, torch_threads=2, sim_threads=2, ppo=(("minibatch_size", 2048), ("mini_epochs", 2))),
)


def env_steps_per_s(case: LLCBenchCase, steps: int = 100, seed: int = 0) -> float:
    """Control steps per second of the case's training env alone, random actions U(-0.5, 0.5)."""
    settings = replace(profile(case.scale).llc.env, num_threads=case.sim_threads)
    lib, _ = load_motions(motion_weights=settings.motion_weights)
    env = build_env_factory(lib, case.num_envs, settings, "cpu", seed)()
    env.reset()
    g = torch.Generator().manual_seed(seed)
    actions = [torch.rand(case.num_envs, env.num_actions, generator=g) - 0.5 for _ in range(steps + 10)]
    for a in actions[:10]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions[10:]:
        env.step(a)
    return case.num_envs * steps / (time.perf_counter() - t0)


def measure(case: LLCBenchCase, seed: int = 0) -> dict:
    torch.set_num_threads(case.torch_threads)
    stamps: list[float] = []
    settings = replace(profile(case.scale).llc.env, num_threads=case.sim_threads)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_llc(case.scale, out_dir=Path(tmp) / "bench", num_envs=case.num_envs,
                           max_epochs=case.warmup_epochs + case.epochs, seed=seed, progress=False,
                           torch_threads=case.torch_threads, env_settings=settings,
                           overrides={"save_frequency": 0, "print_stats": False, **dict(case.ppo)},
                           epoch_callbacks=[lambda agent, stats: stamps.append(time.perf_counter())])
    stats = result.epoch_stats[case.warmup_epochs:]
    walls = [b - a for a, b in itertools.pairwise(stamps[case.warmup_epochs - 1:])]
    samples = result.samples // len(result.epoch_stats)
    wall = sum(walls)
    sim = sum(s["step_time_s"] for s in stats)
    play = sum(s["play_time_s"] for s in stats)
    learn = sum(s["update_time_s"] for s in stats)
    rate = samples * len(walls) / wall
    env_rate = env_steps_per_s(case, seed=seed)
    return {
        **asdict(case),
        "samples_per_epoch": samples,
        "epoch_wall_s": round(wall / len(walls), 3),
        "samples_per_s": round(rate, 1),
        "share_sim": round(sim / wall, 3),
        "share_inference": round((play - sim) / wall, 3),
        "share_learning": round(learn / wall, 3),
        "share_other": round(1.0 - (play + learn) / wall, 3),
        "env_steps_per_s": round(env_rate, 1),
        "env_ratio": round(env_rate / rate, 2),
        "epoch_wall_s_each": [round(w, 3) for w in walls],
    }


def measure_tracking_route(num_envs: int = 256, sim_threads: int = 2, learn_threads: int = 2, iterations: int = 6,
                           seed: int = 0) -> dict:
    """The tracking route at laptop sizes: tracker PPO and DAgger distillation samples/s (iterations after the first,
    which builds the env and warms up), and the tracking env alone under zero residuals, in the same process."""
    from anyskill.config.tracking import route_profile
    from anyskill.data import default_library
    from anyskill.llc.tracking.distill import distill
    from anyskill.llc.tracking.env import TrackingEnv
    from anyskill.llc.tracking.tracker import Tracker, train_tracker

    torch.set_num_threads(1)
    lib = default_library()
    prof = route_profile("laptop")
    track = replace(prof.track, num_envs=num_envs, num_threads=sim_threads, seed=seed)
    per_iter = num_envs * prof.ppo.horizon
    ppo = replace(prof.ppo, total_samples=per_iter * (iterations + 1), learn_threads=learn_threads)
    dcfg = replace(prof.distill, num_envs=num_envs, total_samples=per_iter * (iterations + 1),
                   learn_threads=learn_threads)
    with tempfile.TemporaryDirectory() as tmp:
        run = train_tracker(lib, Path(tmp) / "t", track, ppo, seed=seed, progress=False)
        env = TrackingEnv(track, lib)
        teacher = Tracker(env.num_obs, env.num_actions, ppo.actor_units, ppo.critic_units).eval()
        drun = distill(lib, teacher, track, Path(tmp) / "d", dcfg, seed=seed, progress=False)
    env.reset()
    zeros = torch.zeros(num_envs, env.num_actions)
    for _ in range(5):
        env.step(zeros)
    t0 = time.perf_counter()
    for _ in range(50):
        env.step(zeros)
    env_rate = num_envs * 50 / (time.perf_counter() - t0)

    def rate(curve: list[dict]) -> float:
        rows = curve[1:]
        return sum(r["samples_per_s"] for r in rows) / len(rows)

    tracker_rate, distill_rate = rate(run.curve), rate(drun.curve)
    return {"num_envs": num_envs, "sim_threads": sim_threads, "learn_threads": learn_threads,
            "tracker_samples_per_s": round(tracker_rate, 1),
            "tracker_share_sim": round(sum(r["sim_fraction"] for r in run.curve[1:]) / iterations, 3),
            "distill_samples_per_s": round(distill_rate, 1),
            "distill_share_sim": round(sum(r["sim_fraction"] for r in drun.curve[1:]) / iterations, 3),
            "tracking_env_steps_per_s": round(env_rate, 1),
            "tracker_env_ratio": round(env_rate / tracker_rate, 2),
            "distill_env_ratio": round(env_rate / distill_rate, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_llc.json")
    parser.add_argument("--quick", action="store_true", help="one short case (a check that it runs)")
    parser.add_argument("--route", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the tracking route (tracker PPO, distillation, tracking env alone)")
    parser.add_argument("--route-only", action="store_true", help="only the tracking route")
    args = parser.parse_args(argv)
    cases = [LLCBenchCase("laptop", 32, epochs=2, warmup_epochs=1)] if args.quick else list(CASES)
    if args.route_only:
        cases = []
    prov = Provenance(notebook="bench/bench_llc.py", config={"cases": [asdict(c) for c in cases]})
    rows = []
    print(f"{'scale':>7} {'N':>4} {'thr':>3} {'sim':>3} {'samples/s':>10} {'env/s':>7} {'ratio':>5} {'sim%':>5} "
          f"{'infer':>5} {'learn':>5} {'other':>5}")
    for case in cases:
        row = measure(case)
        rows.append(row)
        print(f"{row['scale']:>7} {row['num_envs']:>4} {row['torch_threads']:>3} {row['sim_threads']:>3} "
              f"{row['samples_per_s']:>10.0f} {row['env_steps_per_s']:>7.0f} {row['env_ratio']:>5.2f} "
              f"{row['share_sim']:>5.2f} {row['share_inference']:>5.2f} {row['share_learning']:>5.2f} "
              f"{row['share_other']:>5.2f}", flush=True)
    route = None
    if args.route:
        route = measure_tracking_route(num_envs=32 if args.quick else 256, iterations=2 if args.quick else 6)
        print("tracking route: " + ", ".join(f"{k} {v}" for k, v in route.items()), flush=True)
    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "amx_bf16": bool(torch.cpu._is_amx_tile_supported()),
        "load_average_at_end": os.getloadavg(),
    }
    path = prov.finish().write_json({"machine_info": info, "results": rows, "tracking_route": route}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
