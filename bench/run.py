"""Environment throughput against raw physics, for every backend, declared as data and run by one script.

For each case (backend, device, number of worlds N) it measures, in the same process and interleaved:

* ``env``: ``HumanoidEnv.step`` control steps per second (random actions U(-0.5, 0.5), 4 physics steps each, plus
  observations, AMP history, terminations and resets);
* ``backend``: the same backend's ``set_pd_targets`` + ``step(4)`` with nothing else (the raw backend rate);
* ``mj_step`` (CPU cases): a plain ``mujoco.mj_step(m, d, 4)`` loop over N ``MjData``, the absolute baseline.

and reports the ratios env/backend and env/mj_step (time per control step, 1.0 = no overhead). The best of
several rounds counts (the machines are shared; the least disturbed round is the most repeatable).

    .venv/bin/python bench/run.py                       # CPU cases -> results/bench.json, figures/bench_env_scaling.png
    .venv/bin/python bench/run.py --gpu                 # adds WarpBackend on cuda:0 for N up to 8192
    .venv/bin/python bench/run.py --warp-cpu            # adds WarpBackend on Warp's CPU device (slow; parity only)
    .venv/bin/python bench/run.py --gpu --no-cpu --worlds 1024 2048 4096 8192 --out OUT/bench.json   # GPU only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import mujoco
import numpy as np
import torch

from anyskill.humanoid.model import load_humanoid
from anyskill.provenance import Provenance
from anyskill.sim.env import EnvConfig, HumanoidEnv

ROOT = Path(__file__).resolve().parent.parent
SUBSTEPS = 4


@dataclass(frozen=True)
class Case:
    backend: str  # "mujoco" | "warp"
    device: str  # "cpu" | "cuda:0"
    num_envs: int
    control_steps: int
    rounds: int = 3


CPU_CASES = [Case("mujoco", "cpu", n, s) for n, s in ((1, 400), (8, 100), (64, 30), (256, 10))]
WARP_CPU_CASES = [Case("warp", "cpu", n, s, rounds=2) for n, s in ((8, 10), (64, 5))]
GPU_CASES = [Case("warp", "cuda:0", n, s) for n, s in ((64, 200), (512, 200), (1024, 200), (4096, 100), (8192, 50))]


def warp_cases(device: str, worlds: list[int], control_steps: int | None = None, rounds: int = 3) -> list[Case]:
    """WarpBackend cases on ``device`` for the world counts ``worlds``; ``control_steps`` per round (default: about
    200k world-steps a round, 5 to 200 control steps)."""
    return [Case("warp", device, n, control_steps or min(200, max(5, 204_800 // n)), rounds) for n in worlds]


def select_cases(gpu: bool, warp_cpu: bool, cpu: bool = True, worlds: list[int] | None = None,
                 warp_device: str | None = None, control_steps: int | None = None,
                 rounds: int | None = None) -> list[Case]:
    """The cases of a run: the CPU MuJoCo ones (``cpu``), then the Warp ones of ``--warp-cpu`` and ``--gpu`` (the
    default lists, or ``worlds`` on ``warp_device``, default cuda:0 with ``gpu``, else Warp's CPU device)."""
    cases = list(CPU_CASES) if cpu else []
    if worlds:
        device = warp_device or ("cuda:0" if gpu else "cpu")
        cases += warp_cases(device, worlds, control_steps, rounds or 3)
    else:
        cases += (WARP_CPU_CASES if warp_cpu else []) + (GPU_CASES if gpu else [])
        if warp_device:
            cases = [Case(c.backend, warp_device if c.backend == "warp" else c.device, c.num_envs, c.control_steps,
                          c.rounds) for c in cases]
    if rounds is not None:
        cases = [Case(c.backend, c.device, c.num_envs, c.control_steps, rounds) for c in cases]
    return cases


def make_backend(case: Case):
    if case.backend == "mujoco":
        from anyskill.sim.mujoco_backend import MujocoBackend

        return MujocoBackend(case.num_envs)
    from anyskill.sim.warp_backend import WarpBackend

    return WarpBackend(case.num_envs, device=case.device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(case: Case, seed: int = 0) -> dict:
    hm = load_humanoid()
    env = HumanoidEnv(
        EnvConfig(num_envs=case.num_envs, fall_init_prob=0.0, seed=seed, device=case.device),
        backend=make_backend(case),
    )
    env.reset()
    raw = make_backend(case)
    gen = torch.Generator().manual_seed(seed)
    actions = [((torch.rand(case.num_envs, env.num_actions, generator=gen) * 2 - 1) * 0.5).to(case.device)
               for _ in range(case.control_steps)]
    targets = [env.action_to_pd_target(a) for a in actions]

    def run_env() -> float:
        _sync(case.device)
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        _sync(case.device)
        return time.perf_counter() - t0

    def run_backend() -> float:
        _sync(case.device)
        t0 = time.perf_counter()
        for t in targets:
            raw.set_pd_targets(t)
            raw.step(SUBSTEPS)
        _sync(case.device)
        return time.perf_counter() - t0

    runners = {"env": run_env, "backend": run_backend}
    if case.device == "cpu":
        m = hm.mj_model()
        datas = [mujoco.MjData(m) for _ in range(case.num_envs)]
        for d in datas:
            d.qpos[2] = hm.spawn_height
            mujoco.mj_forward(m, d)
        np_targets = [t.cpu().numpy().astype(np.float64) for t in targets]

        def run_mj() -> float:
            t0 = time.perf_counter()
            for t in np_targets:
                for d, target in zip(datas, t, strict=True):
                    d.ctrl[:] = target
                    mujoco.mj_step(m, d, SUBSTEPS)
            return time.perf_counter() - t0

        runners["mj_step"] = run_mj
    for run in runners.values():  # warm-up (kernel compilation, graph capture, caches)
        run()
    best = {k: float("inf") for k in runners}
    for _ in range(case.rounds):
        for k, run in runners.items():
            best[k] = min(best[k], run())
    steps = case.control_steps * case.num_envs
    row = {**asdict(case), **{f"{k}_control_steps_per_s": round(steps / t, 1) for k, t in best.items()}}
    row["env_over_backend"] = round(best["env"] / best["backend"], 3)
    if "mj_step" in best:
        row["env_over_mj_step"] = round(best["env"] / best["mj_step"], 3)
    row["physics_steps_per_s_backend"] = round(SUBSTEPS * steps / best["backend"], 1)
    return row


def plot(rows: list[dict], path: Path, prov: Provenance) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    for (backend, device), group in _groups(rows).items():
        n = [r["num_envs"] for r in group]
        label = f"{backend} ({device})"
        a1.plot(n, [r["env_control_steps_per_s"] for r in group], "o-", label=f"env, {label}")
        a1.plot(n, [r["backend_control_steps_per_s"] for r in group], "x--", label=f"raw backend, {label}")
        a2.plot(n, [r["env_over_backend"] for r in group], "o-", label=label)
    a1.set(xscale="log", yscale="log", xlabel="parallel worlds N", ylabel="control steps / s (30 Hz, 4 physics steps)",
           title="throughput")
    a2.axhline(1.25, color="0.6", ls=":", label="goal 1.25x")
    a2.set(xscale="log", xlabel="parallel worlds N", ylabel="env time / raw backend time", title="environment overhead")
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.tight_layout()
    prov.save_figure(fig, path)


def _groups(rows):
    out: dict = {}
    for r in rows:
        out.setdefault((r["backend"], r["device"]), []).append(r)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gpu", action="store_true", help="add WarpBackend cases on cuda:0")
    p.add_argument("--warp-cpu", action="store_true", help="add WarpBackend cases on Warp's CPU device")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench.json")
    p.add_argument("--figure", type=Path, default=ROOT / "figures" / "bench_env_scaling.png")
    p.add_argument("--merge", action="store_true", help="keep rows of other devices already in --out")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU MuJoCo cases")
    p.add_argument("--worlds", type=int, nargs="+", help="world counts of the Warp cases (not the default lists)")
    p.add_argument("--warp-device", help="device of the Warp cases (default: cuda:0 with --gpu, else cpu)")
    p.add_argument("--control-steps", type=int, help="control steps per round of the --worlds cases")
    p.add_argument("--rounds", type=int, help="timed rounds per case (the best counts; default 3)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # small tensors: one thread is faster on a shared 2-core machine (measured)
    cases = select_cases(args.gpu, args.warp_cpu, not args.no_cpu, args.worlds, args.warp_device, args.control_steps,
                         args.rounds)
    if not cases:
        p.error("no cases: --no-cpu needs --gpu, --warp-cpu or --worlds")
    devices = sorted({c.device for c in cases})
    prov = Provenance("bench/run.py", config={"cases": [asdict(c) for c in cases]},
                      device=",".join(d for d in devices if d != "cpu") or "cpu")
    rows = []
    for case in cases:
        row = measure(case)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.merge and args.out.exists():
        devices = {(r["backend"], r["device"]) for r in rows}
        old = json.loads(args.out.read_text()).get("results", [])
        rows = [r for r in old if (r["backend"], r["device"]) not in devices] + rows
    info = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "mujoco": mujoco.__version__, "load_average": os.getloadavg(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    prov.write_json({"machine_info": info, "results": rows}, args.out)
    plot(rows, args.figure, prov)
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
