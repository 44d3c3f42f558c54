"""Control steps per second of `HumanoidEnv` against raw MuJoCo physics doing the same work.

For each case (number of worlds N): the env steps N humanoids with random actions U(-0.5, 0.5)
(4 physics steps each, observations, AMP history, terminations and resets included); the raw loop
steps N ``MjData`` of the same model with the same kind of PD targets via ``mujoco.mj_step(m, d, 4)``
and does nothing else. Both run in this process, interleaved over several rounds; the best round counts
(the machines are shared, so the minimum time is the least disturbed one).

    .venv/bin/python bench/bench_env.py            # writes results/bench_env.json (< 2 minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mujoco
import numpy as np
import torch

from anyskill.provenance import Provenance
from anyskill.sim.env import EnvConfig, HumanoidEnv
from anyskill.sim.model import load_humanoid

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class BenchCase:
    """One measurement: N worlds, control steps per round, rounds (best one kept)."""

    num_envs: int
    control_steps: int
    rounds: int = 3
    num_threads: int = 1
    action_scale: float = 0.5
    early_termination: bool = True
    """False: no falls, no resets, so the env simulates the same kind of trajectories as the raw loop."""


CASES = (
    BenchCase(num_envs=1, control_steps=600),
    BenchCase(num_envs=8, control_steps=150),
    BenchCase(num_envs=64, control_steps=40),
    BenchCase(num_envs=64, control_steps=40, early_termination=False),
)


def time_env(case: BenchCase, seed: int = 0) -> tuple[HumanoidEnv, callable]:
    cfg = EnvConfig(
        num_envs=case.num_envs,
        num_threads=case.num_threads,
        fall_init_prob=0.0,
        enable_early_termination=case.early_termination,
        episode_length=10**9 if not case.early_termination else EnvConfig.episode_length,
        seed=seed,
    )
    env = HumanoidEnv(cfg)
    env.reset()
    gen = torch.Generator().manual_seed(seed)
    actions = [(torch.rand(case.num_envs, env.num_actions, generator=gen) * 2 - 1) * case.action_scale for _ in range(case.control_steps)]

    def run() -> float:
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        return time.perf_counter() - t0

    return env, run


def time_raw(case: BenchCase, substeps: int, seed: int = 0) -> callable:
    hm = load_humanoid()
    m = hm.mj_model()
    offset, scale = hm.pd_offset_scale
    datas = [mujoco.MjData(m) for _ in range(case.num_envs)]
    for d in datas:
        d.qpos[2] = hm.spawn_height
        mujoco.mj_forward(m, d)
    rng = np.random.default_rng(seed)
    targets = offset + scale * rng.uniform(-case.action_scale, case.action_scale, (case.control_steps, case.num_envs, m.nu))

    def run() -> float:
        t0 = time.perf_counter()
        for step_targets in targets:
            for d, target in zip(datas, step_targets):
                d.ctrl[:] = target
                mujoco.mj_step(m, d, substeps)
        return time.perf_counter() - t0

    return run


def measure(case: BenchCase) -> dict:
    env, run_env = time_env(case)
    run_raw = time_raw(case, env.cfg.control_freq_inv)
    run_env(), run_raw()  # warm-up
    env_times, raw_times = [], []
    for _ in range(case.rounds):
        env_times.append(run_env())
        raw_times.append(run_raw())
    env_sps = case.control_steps * case.num_envs / min(env_times)
    raw_sps = case.control_steps * case.num_envs / min(raw_times)
    return {
        **asdict(case),
        "env_control_steps_per_s": round(env_sps, 1),
        "raw_control_steps_per_s": round(raw_sps, 1),
        "raw_physics_steps_per_s": round(raw_sps * env.cfg.control_freq_inv, 1),
        "env_over_raw_time": round(raw_sps / env_sps, 3),
        "env_round_times_s": [round(t, 4) for t in env_times],
        "raw_round_times_s": [round(t, 4) for t in raw_times],
        "sim_blowups": env.sim_blowups_total,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench_env.json")
    parser.add_argument("--threads", type=int, default=1, help="MuJoCo backend worker threads")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads; 1 by default: the env's tensors are small, and on a busy 2-core machine "
        "thread contention made a 320 kB copy take 15 ms instead of 60 us",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)

    prov = Provenance(
        notebook="bench/bench_env.py",
        config={"cases": [asdict(c) for c in CASES], "threads": args.threads, "torch_threads": args.torch_threads},
    )
    rows = []
    print(f"{'N':>4} {'resets':>6} {'env steps/s':>12} {'raw steps/s':>12} {'env/raw time':>13}")
    for case in CASES:
        row = measure(BenchCase(**{**asdict(case), "num_threads": args.threads}))
        rows.append(row)
        print(f"{row['num_envs']:>4} {str(row['early_termination']):>6} {row['env_control_steps_per_s']:>12.0f} {row['raw_control_steps_per_s']:>12.0f} {row['env_over_raw_time']:>13.2f}")
    info = {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "mujoco": mujoco.__version__,
        "load_average": os.getloadavg(),
    }
    path = prov.finish().write_json({"machine_info": info, "results": rows}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
