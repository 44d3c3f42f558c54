"""One-shot training of the tracking route on one GPU, within a wall-clock budget, resumable across GPU loans.

``python -m anyskill.llc.tracking.oneshot OUT [--budget S] [--resume DIR] [--dry-run]`` (``scripts/gpu_train_llc.sh``
installs from carried wheels first):

1. measures, in this process and on the same worlds, the tracking env alone (zero actions) and MuJoCo Warp's raw
   physics: the baseline the training's throughput is reported against;
2. trains the tracker, then distils the student (:func:`~anyskill.llc.tracking.route.train_tracking_route`, ``gpu``
   sizes: 8192 humanoids on MuJoCo Warp, rollouts, buffers and updates on the GPU) within ``--budget`` seconds;
   ``--resume DIR`` first takes the checkpoints a previous run returned (``tracker.pth``, ``llc.pth`` or its parts,
   ``train_info.json``), so several loans add up;
3. evaluates the controller (``anyskill eval-llc``: held skills, sliding latents, the tracker, random latents; MuJoCo C
   on the machine's cores) under its own time limit;
4. writes at most 8 files of at most 16 MiB into OUT (the device tool's limits): ``summary.json`` (every number, with
   provenance), ``tracker.pth`` and ``llc.pth`` (whole, with optimiser state, for ``--resume``; split into ``.partNN``
   files above 16 MiB), ``curves.tar.gz`` (curves and settings), ``eval.tar.gz`` (evaluation files).

``--dry-run`` runs every step on the CPU in minutes: Warp's CPU device, the GPU code path (``dense`` masks), ``smoke``
sizes; the test suite runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

MAX_FILE_BYTES = 16 * 2**20
"""The device tool's limit on a returned file."""
PART_BYTES = MAX_FILE_BYTES - 2**16


def split_file(path: Path, out_dir: Path) -> list[Path]:
    """Copy ``path`` into ``out_dir``, as ``NAME.partNN`` pieces of :data:`PART_BYTES` when it exceeds the limit."""
    data = path.read_bytes()
    if len(data) <= MAX_FILE_BYTES:
        target = out_dir / path.name
        shutil.copyfile(path, target)
        return [target]
    parts = []
    for k, i in enumerate(range(0, len(data), PART_BYTES)):
        target = out_dir / f"{path.name}.part{k:02d}"
        target.write_bytes(data[i:i + PART_BYTES])
        parts.append(target)
    return parts


def join_file(folder: Path, name: str, target: Path) -> bool:
    """``folder/name`` (or its ``.partNN`` pieces, joined) copied to ``target``; False when neither exists."""
    whole = folder / name
    parts = sorted(folder.glob(f"{name}.part[0-9][0-9]"))
    if whole.is_file():
        shutil.copyfile(whole, target)
    elif parts:
        target.write_bytes(b"".join(p.read_bytes() for p in parts))
    else:
        return False
    return True


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_env(lib, track, steps: int = 30) -> dict[str, float]:
    """Control steps/s of the tracking env alone (zero residual actions) and physics steps/s of its backend's raw
    ``step`` on the same worlds, after a warm-up (the compile and the CUDA-graph capture)."""
    from anyskill.llc.tracking.env import TrackingEnv

    env = TrackingEnv(track, lib)
    dev, n = env.device, env.num_envs
    t = time.time()
    env.reset()
    zeros = torch.zeros(n, env.num_actions, device=dev)
    for _ in range(3):
        env.step(zeros)
    _sync(dev)
    warm_s = time.time() - t
    t = time.time()
    for _ in range(steps):
        env.step(zeros)
    _sync(dev)
    env_rate = steps * n / (time.time() - t)
    sub = env.env.cfg.control_freq_inv
    t = time.time()
    for _ in range(steps):
        env.backend.step(sub)
    _sync(dev)
    raw_rate = steps * sub * n / (time.time() - t)
    del env
    return {"worlds": n, "first_steps_s": warm_s, "env_control_steps_per_s": env_rate,
            "env_physics_steps_per_s": env_rate * sub, "backend_physics_steps_per_s": raw_rate,
            "env_over_backend": raw_rate / (env_rate * sub)}


def _curve_rate(rows: list[dict], skip: int = 2) -> float | None:
    """Median samples/s of a curve's iterations after the first ``skip`` (compile, capture, warm-up)."""
    rates = sorted(r["samples_per_s"] for r in rows[skip:]) or sorted(r["samples_per_s"] for r in rows)
    return rates[len(rates) // 2] if rates else None


def _read_csv(path: Path) -> list[dict]:
    import pandas as pd

    return pd.read_csv(path).to_dict("records") if path.is_file() else []


def run(out: str | Path, budget_s: float = 480.0, resume: str | Path | None = None, dry_run: bool = False,
        eval_timeout_s: float = 120.0, work: str | Path | None = None, seed: int = 0,
        process_start: float | None = None, switch_clips: list[str] | None = None) -> dict[str, Any]:
    """The one-shot training (module docstring); returns the summary written to ``out/summary.json``.
    ``switch_clips``: as ``train-llc --switch-clips`` (e.g. ["tracked"]; the evaluation it needs counts in the
    budget)."""
    from anyskill.config.tracking import route_profile
    from anyskill.llc.motions import load_motions
    from anyskill.llc.tracking.route import train_tracking_route
    from anyskill.provenance import Provenance

    t_python = time.time()
    t_start = process_start or t_python
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(work) if work else out.parent / (out.name + "_work")
    run_dir = work / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    if dry_run:
        scale, device, backend = "smoke", "cpu", "warp"
    else:
        scale, device, backend = "gpu", "cuda:0", "auto"
        if not torch.cuda.is_available():
            raise RuntimeError("no CUDA device: run with --dry-run on a CPU machine")
        torch.backends.cuda.matmul.allow_tf32 = True  # the networks' matrix products in TF32: PPO does not need more
        torch.backends.cudnn.allow_tf32 = True
    resumed = {}
    if resume is not None:
        for name in ("tracker.pth", "llc.pth"):
            resumed[name] = join_file(Path(resume), name, run_dir / name)
        curves = Path(resume) / "curves.tar.gz"
        resumed["train_info.json"] = curves.is_file()
        if curves.is_file():
            with tarfile.open(curves) as tar:
                tar.extractall(run_dir, members=[m for m in tar.getmembers() if m.name == "train_info.json"])
            resumed["train_info.json"] = (run_dir / "train_info.json").is_file()
    prov = Provenance("anyskill.llc.tracking.oneshot", config={"budget_s": budget_s, "scale": scale, "device": device,
                                                                "resume": str(resume) if resume else None,
                                                                "switch_clips": switch_clips}, seed=seed,
                      device=device)
    summary: dict[str, Any] = {"kind": "gpu_train_llc", "dry_run": dry_run, "budget_s": budget_s, "sizes": scale,
                               "resumed_from": {k: v for k, v in resumed.items()} or None,
                               "machine": _machine()}
    if os.environ.get("ANYSKILL_WARP_VERBOSE"):  # every kernel module load, "(compiled)" or "(cached)", in the log
        import warp as wp

        import anyskill.sim.warp_backend  # noqa: F401  (sets Warp's log level on import; raised here after it)

        wp.config.log_level = wp.LOG_INFO
    lib, _ = load_motions()
    prof = route_profile(scale)
    track = replace(prof.track, device=device, backend=backend, dense=True, seed=seed)
    t = time.time()
    summary["env_alone"] = measure_env(lib, track, steps=5 if dry_run else 30)
    summary["env_alone"]["wall_s"] = time.time() - t
    print("env alone:", json.dumps(summary["env_alone"]), flush=True)
    # each loan may add a whole profile's worth of samples to what a resumed run holds; the budget decides
    done = {name: _samples(run_dir / name) for name in ("tracker.pth", "llc.pth")}
    t_train = time.time()
    info = train_tracking_route(lib, run_dir, scale=scale, time_budget_s=budget_s, seed=seed, progress=False,
                                log_every=1, device=device, backend=backend,
                                tracker_samples=done["tracker.pth"] + prof.ppo.total_samples,
                                distill_samples=done["llc.pth"] + prof.distill.total_samples,
                                switch_clips=switch_clips)
    summary["train_wall_s"] = time.time() - t_train
    tracker_rows = _read_csv(run_dir / "tracker_curve.csv")
    distill_rows = _read_csv(run_dir / "distill_curve.csv")
    first = next((r for r in tracker_rows if r.get("time", 0.0) >= t_train), None)  # this run's (not a resumed one's)
    summary["cold_start_to_first_iteration_s"] = (first["time"] - t_start) if first else None
    summary["python_start_to_first_iteration_s"] = (first["time"] - t_python) if first else None
    tr, dr = _curve_rate(tracker_rows), _curve_rate(distill_rows)
    env_rate = summary["env_alone"]["env_control_steps_per_s"]
    summary["tracker"] = {**info.get("tracker", {}), "samples_per_s": tr,
                          "over_env_alone": tr / env_rate if tr else None,
                          "last": tracker_rows[-1] if tracker_rows else None}
    summary["distill"] = {"samples": info["distill"]["samples"], "wall_s": info["distill"]["wall_s"],
                          "samples_per_s": dr, "last": distill_rows[-1] if distill_rows else None}
    summary["eval"] = (_evaluate(run_dir, work / "eval", eval_timeout_s, dry_run) if eval_timeout_s > 0
                       else {"status": "skipped"})
    summary["provenance"] = prov.finish().as_dict()
    summary["wall_s"] = time.time() - t_start
    _pack(out, run_dir, work / "eval", summary)
    return summary


def _samples(checkpoint: Path) -> int:
    """Samples a tracker or student checkpoint was trained on (0 when there is none)."""
    if not checkpoint.is_file():
        return 0
    return int(torch.load(checkpoint, map_location="cpu", weights_only=False).get("samples", 0))


def _machine() -> dict[str, Any]:
    import platform

    m: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                         "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        m["gpu"] = torch.cuda.get_device_name(0)
    try:
        import mujoco
        import warp

        m["mujoco"], m["warp"] = mujoco.__version__, warp.config.version
    except ImportError:
        pass
    return m


def _evaluate(run_dir: Path, eval_dir: Path, timeout_s: float, dry_run: bool) -> dict[str, Any]:
    """``anyskill eval-llc`` of the student (held skills, sliding and random latents, the tracker) in a subprocess
    under ``timeout_s``; its printed summary and files are kept."""
    seconds = ["--seconds", "2", "--skill-seconds", "2", "--idle-seconds", "2"] if dry_run else []
    cmd = [sys.executable, "-m", "anyskill.cli", "eval-llc", str(run_dir / "llc.pth"), "--out", str(eval_dir),
           "--no-baseline", "--skills", "--sliding", "--random-latents", "--tracker", str(run_dir / "tracker.pth"),
           *seconds]
    t = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        status, text = ("ok" if p.returncode == 0 else "failed"), p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        status = "timed_out"
        text = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
    print(text[-4000:], flush=True)
    result: dict[str, Any] = {"status": status, "wall_s": time.time() - t, "command": cmd, "output_tail": text[-3000:]}
    for name in ("llc_skills.json", "llc_interface.json"):
        f = eval_dir / name
        if f.is_file():
            try:
                result[name.removesuffix(".json")] = json.loads(f.read_text())
            except json.JSONDecodeError:
                pass
    return result


def _pack(out: Path, run_dir: Path, eval_dir: Path, summary: dict[str, Any]) -> None:
    """The ≤ 8 returned files (module docstring)."""
    files: list[Path] = []
    for name in ("tracker.pth", "llc.pth"):
        if (run_dir / name).is_file():
            files += split_file(run_dir / name, out)
    with tarfile.open(out / "curves.tar.gz", "w:gz") as tar:
        for name in ("tracker_curve.csv", "distill_curve.csv", "train_info.json"):
            if (run_dir / name).is_file():
                tar.add(run_dir / name, arcname=name)
    if eval_dir.is_dir():
        with tarfile.open(out / "eval.tar.gz", "w:gz") as tar:
            for f in sorted(eval_dir.iterdir()):
                tar.add(f, arcname=f.name)
    summary["files"] = sorted(p.name for p in out.iterdir()) + ["summary.json"]
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m anyskill.llc.tracking.oneshot", description=__doc__.split("\n")[0])
    ap.add_argument("out", help="folder for the ≤ 8 returned files")
    ap.add_argument("--budget", type=float, default=480.0, help="training wall-clock seconds (default 480 = 8 min)")
    ap.add_argument("--resume", help="folder of a previous run's returned files to continue from")
    ap.add_argument("--dry-run", action="store_true", help="the CPU rehearsal: Warp's CPU device, smoke sizes")
    ap.add_argument("--eval-timeout", type=float, default=120.0,
                    help="seconds for the evaluation (default 120; 0 skips it, e.g. to evaluate elsewhere on CPUs)")
    ap.add_argument("--work", help="scratch folder (default: OUT_work beside OUT)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--switch-clips", nargs="+", metavar="CLIP",
                    help="the student's switched and random latents go to these clips' windows; 'tracked': those the "
                         "tracker finishes (default: every clip)")
    args = ap.parse_args(argv)
    t0 = float(os.environ.get("ANYSKILL_T0", "0")) or None
    s = run(args.out, budget_s=args.budget, resume=args.resume, dry_run=args.dry_run, eval_timeout_s=args.eval_timeout,
            work=args.work, seed=args.seed, process_start=t0, switch_clips=args.switch_clips)
    keys = ("env_alone", "tracker", "distill", "cold_start_to_first_iteration_s", "wall_s")
    print(json.dumps({k: s[k] for k in keys if k in s}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
