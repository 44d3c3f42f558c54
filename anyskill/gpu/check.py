"""``anyskill gpu-check OUT_DIR``: every GPU path of the project in one call, each step under its own time limit.

Run through ``scripts/gpu_check.sh OUT_DIR [--dry-run] [options]`` (which first makes sure the environment is
installed), or directly as ``anyskill gpu-check`` once it is. Steps, in order (``--only``/``--skip`` choose):

=================== ====================================================================================
``warp_parity``     ``tests/test_warp_backend.py`` with ``ANYSKILL_WARP_DEVICE=cuda:0`` (Warp vs MuJoCo C)
``bench_env``       ``bench/run.py``: HumanoidEnv vs raw MuJoCo Warp stepping at 1k-8k worlds
``bench_reward``    ``bench/bench_reward.py --device cuda:0``: rendered + CLIP-encoded (fp16) frames/s
``llc_default``     the default low-level route through its one-shot GPU trainer (``python -m
                    anyskill.llc.tracking.oneshot``: the tracking env alone, then tracker + student on MuJoCo Warp
                    at the ``gpu`` sizes) for a wall-clock budget; its evaluation is ``eval_default``'s
``llc_calm``        ``train-llc --route calm --scale paper`` for a wall-clock budget, a checkpoint every minute
``eval_default``    ``anyskill eval-llc`` on the packed ``llc_default`` checkpoint (held-out skills, the tracker)
``eval_calm``       the same on ``llc_calm``
``hlc_pose``        a high-level policy on a pose goal (the shipped LLC), timed
``hlc_text``        one on a text prompt, CLIP on rendered frames (random weights unless cached ones exist)
=================== ====================================================================================

``--dry-run`` runs the same steps at tiny sizes on the CPU (Warp's CPU device for the Warp steps), for the test
suite; its outputs have the same names and formats. OUT_DIR receives at most 8 files of at most 16 MiB:

* ``summary.json``: machine, versions, ``nvidia-smi``, per step status (ok / failed / timed_out / skipped), wall time,
  key numbers and the tail of its stderr, and the issue's goals as ratios;
* ``gpu_check.log``: every command and its full output;
* ``results.tar.gz``: the benchmark JSONs, parity report, training records, eval CSV/JSON/PNG, HLC statistics;
* ``llc_default.pth``, ``llc_calm.pth`` (weights only; fp16 and split into ``.partNN`` when over 16 MiB).

``anyskill gpu-ingest OUT_DIR`` turns them into committed results.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from anyskill.gpu.files import MAX_FILE_BYTES, MAX_FILES, bundle, join_parts, pack_checkpoint
from anyskill.gpu.steps import Step, run_steps
from anyskill.provenance import REPO_ROOT, git_commit

STEPS = ("warp_parity", "bench_env", "bench_reward", "llc_default", "llc_calm", "eval_default", "eval_calm",
         "hlc_pose", "hlc_text")
GPU_TIMEOUTS = {"warp_parity": 120, "bench_env": 60, "bench_reward": 40, "llc_default": 130, "llc_calm": 95,
                "eval_default": 60, "eval_calm": 40, "hlc_pose": 45, "hlc_text": 60}
"""Seconds each step may take on the GPU machine (its process is killed after them); sum 650 s, but the ``total``
limit (480 s) bounds the run and most steps end well before their limit. ``llc_default``: about 45 s from Python's
start to the first training iteration on an H200 (imports, the tracking env alone measured, Warp kernels compiled or
read from the ahead-of-time cache), then its 50-s training budget, a last iteration and the checkpoints;
``eval_default`` (the student, and the tracker with its reference) took 39.8 s of its former 40."""
DRY_TIMEOUTS = {"warp_parity": 120, "bench_env": 60, "bench_reward": 60, "llc_default": 90, "llc_calm": 100,
                "eval_default": 60, "eval_calm": 60, "hlc_pose": 45, "hlc_text": 60}
TRAIN_SECONDS = {"gpu": {"llc_default": 50.0, "llc_calm": 60.0}, "dry": {"llc_default": 10.0, "llc_calm": 5.0}}
"""Wall-clock training budgets of the two low-level routes (the one-shot trainer's ``--budget``, ``train-llc
--time-budget``)."""
TOTAL = {"gpu": 480.0, "dry": 180.0}
"""Seconds for all steps: on the GPU 8 minutes, so that the install (about a minute from local wheels) and the
transfers fit one 10-minute device command; the dry run 3 minutes on an idle 2-core machine."""
GOALS = {"env_over_backend_max": 1.25, "physics_steps_per_s_min": 2e6, "render_and_encode_fps_min": 1e4}
TEXT_PROMPT = "raise both arms"
POSE_CLIP = "squat"


# ------------------------------------------------------------------------------------------- collectors
def junit_counts(path: Path) -> dict[str, int]:
    """tests/failures/errors/skipped/passed of a pytest ``--junitxml`` report."""
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return counts


def bench_env_numbers(path: Path) -> dict[str, Any]:
    rows = [r for r in json.loads(path.read_text())["results"] if r["backend"] == "warp"]
    per_n = {str(r["num_envs"]): {"env_over_backend": r["env_over_backend"],
                                   "env_physics_steps_per_s": round(4 * r["env_control_steps_per_s"], 1),
                                   "backend_physics_steps_per_s": r["physics_steps_per_s_backend"]} for r in rows}
    largest = max(rows, key=lambda r: r["num_envs"])
    return {"device": largest["device"], "by_worlds": per_n, "largest_worlds": largest["num_envs"],
            "env_over_backend_at_largest": largest["env_over_backend"],
            "env_physics_steps_per_s_best": max(v["env_physics_steps_per_s"] for v in per_n.values())}


def train_numbers(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """epochs, samples, wall time and samples/s of a training run (``train_info.json``, else its printout)."""
    info_path = run_dir / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    out = {k: info[k] for k in ("epochs", "samples", "wall_time_s", "num_envs", "scale") if k in info}
    stages = {k: info[k] for k in ("tracker", "distill") if isinstance(info.get(k), dict) and "samples" in info[k]}
    if stages and "samples" not in out:  # the tracking route: a tracker, then its distillation
        out["stages"] = {k: {"samples": v["samples"], "wall_s": v.get("wall_s")} for k, v in stages.items()}
        out["samples"] = sum(int(v["samples"]) for v in stages.values())
        out["wall_time_s"] = round(sum(float(v.get("wall_s") or 0) for v in stages.values()), 2)
    m = re.search(r"trained (\d+) epochs, (\d+) samples in ([\d.]+) s", result["stdout"])
    if m and "samples" not in out:
        out.update(epochs=int(m[1]), samples=int(m[2]), wall_time_s=float(m[3]))
    if out.get("samples") and out.get("wall_time_s"):
        out["samples_per_s"] = round(out["samples"] / out["wall_time_s"], 1)
    return out


def oneshot_numbers(out_dir: Path) -> dict[str, Any]:
    """samples, wall time and samples/s of a one-shot training (its ``summary.json``), per stage too, beside the
    tracking env alone on the same worlds and the time from Python's start to the first iteration."""
    s = json.loads((out_dir / "summary.json").read_text())
    stages = {k: {"samples": int(s[k]["samples"]), "wall_s": round(float(s[k].get("wall_s") or 0), 2),
                  "samples_per_s": s[k].get("samples_per_s")}
              for k in ("tracker", "distill") if isinstance(s.get(k), dict) and "samples" in s[k]}
    samples, wall = sum(v["samples"] for v in stages.values()), sum(v["wall_s"] for v in stages.values())
    env = s.get("env_alone", {})
    return {"scale": s.get("sizes"), "num_envs": env.get("worlds"), "stages": stages, "samples": samples,
            "wall_time_s": round(wall, 2), "samples_per_s": round(samples / wall, 1) if wall else None,
            "tracker_over_env_alone": s.get("tracker", {}).get("over_env_alone"),
            "env_alone": {k: env.get(k) for k in ("env_control_steps_per_s", "env_over_backend", "first_steps_s")},
            "python_start_to_first_iteration_s": s.get("python_start_to_first_iteration_s"),
            "train_wall_s": s.get("train_wall_s")}


def run_dir_of(work: Path, name: str) -> Path:
    """Where training step ``name`` leaves its checkpoints: the one-shot trainer's run folder for ``llc_default``."""
    return work / f"{name}_work" / "run" if name == "llc_default" else work / name


def final_checkpoint(run_dir: Path) -> Path:
    """``run_dir/llc.pth`` (the tracking route's), else the newest rl-games checkpoint of ``run_dir/nn``."""
    if (run_dir / "llc.pth").is_file():
        return run_dir / "llc.pth"
    from anyskill.llc.calm.train import latest_checkpoint

    return latest_checkpoint(run_dir)


def skill_numbers(eval_dir: Path) -> dict[str, Any]:
    summary = json.loads((eval_dir / "llc_skills.json").read_text())["summary"]
    import pandas as pd

    per_clip = pd.read_csv(eval_dir / "llc_eval.csv", comment="#")
    trained = per_clip[per_clip["controller"] != "untrained"] if "controller" in per_clip else per_clip
    numeric = trained.select_dtypes("number").mean().round(4).to_dict()
    return {"skills": summary, "per_clip_mean": numeric}


def hlc_numbers(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    stats = pd.read_csv(run_dir / "epoch_stats.csv", comment="#")
    steps, wall = int(stats["hlc_env_steps"].sum()), float(stats["wall_time_s"].sum())
    return {"epochs": len(stats), "hlc_steps": steps, "train_wall_s": round(wall, 2),
            "process_wall_s": result["wall_s"], "hlc_steps_per_s": round(steps / wall, 1) if wall else None,
            "last_similarity": round(float(stats["similarity"].iloc[-1]), 4)}


# ------------------------------------------------------------------------------------------- the plan
def clip_weights_for_text() -> str:
    """The authors' pretrained tag when its weights are cached here, else "random" (a pipeline check only)."""
    from anyskill.reward.clip_model import DEFAULT_PRETRAINED, cached_weights_file

    return DEFAULT_PRETRAINED if cached_weights_file("ViT-B-32", DEFAULT_PRETRAINED) else "random"


def build_plan(work: Path, out: Path, dry: bool, timeouts: dict[str, float], train_s: dict[str, float],
               packed: dict[str, Any], pretrained_text: str) -> list[Step]:
    """The steps of a run writing into ``work`` (everything) and ``out`` (the checkpoints); ``packed`` collects
    what :func:`pack_checkpoint` did per route."""
    py, cli = sys.executable, [sys.executable, "-m", "anyskill.cli"]
    dev = "cpu" if dry else "cuda:0"

    def pack(name: str, numbers: dict[str, Any]) -> dict[str, Any]:
        run_dir = run_dir_of(work, name)
        ckpt = final_checkpoint(run_dir)
        packed[name] = pack_checkpoint(ckpt, out / f"{name}.pth")
        join_parts(out / f"{name}.pth", work / f"{name}_packed.pth")  # eval reads exactly what comes back
        numbers.update(checkpoint=ckpt.name, packed=packed[name],
                       checkpoints_written=len(list((run_dir / "nn").glob("*.pth"))) if (run_dir / "nn").is_dir()
                       else 1)
        return numbers

    # the default route through its one-shot GPU trainer (gpu sizes on MuJoCo Warp; --dry-run: smoke sizes on Warp's
    # CPU device); its evaluation is eval_default's, so the trainer's own is left out
    default = Step("llc_default", [py, "-m", "anyskill.llc.tracking.oneshot", str(work / "llc_default"), "--budget",
                                   str(train_s["llc_default"]), "--eval-timeout", "0", "--work",
                                   str(work / "llc_default_work"), "--seed", "0", *(["--dry-run"] if dry else [])],
                   timeouts["llc_default"],
                   collect=lambda r, c: pack("llc_default", oneshot_numbers(work / "llc_default")))
    calm_dir = run_dir_of(work, "llc_calm")
    calm = Step("llc_calm", [*cli, "train-llc", "--route", "calm", "--scale", "paper", "--out", str(calm_dir),
                             "--time-budget", str(train_s["llc_calm"]), "--checkpoint-every", "2" if dry else "60",
                             "--device", dev, "--seed", "0", "--no-progress",
                             *(["--envs", "8", "--backend", "warp", "--epochs", "2"] if dry else [])],
                timeouts["llc_calm"], collect=lambda r, c: pack("llc_calm", train_numbers(calm_dir, r)))

    def eval_step(name: str, route: str) -> Step:
        eval_dir = work / name
        # the interface checks have no size options: the GPU run makes them, the dry run leaves them out
        seconds = ["--seconds", "0.5", "--skill-seconds", "0.5", "--idle-seconds", "1", "--no-sliding",
                   "--no-random-latents"] if dry else []

        def argv(ctx: dict[str, Any]) -> list[str]:
            tracker = run_dir_of(work, route) / "tracker.pth"  # the tracking route's, evaluated with the reference
            extra = ["--tracker", str(tracker)] if tracker.is_file() and not dry else []
            return [*cli, "eval-llc", str(work / f"{route}_packed.pth"), "--out", str(eval_dir), "--no-baseline",
                    *seconds, *extra]

        return Step(name, argv, timeouts[name], collect=lambda r, c: skill_numbers(eval_dir), needs=(route,))

    llc = shipped_llc_path()
    hlc_common = ["--llc", str(llc), "--device", dev, "--seed", "0", "--no-progress"]
    hlc_size = ["--scale", "smoke", "--epochs", "1", "--num-envs", "4"] if dry else ["--scale", "paper"]
    warp_env = {"ANYSKILL_WARP_DEVICE": dev, "OMP_NUM_THREADS": "1"}
    parity_xml = work / "warp_parity.xml"
    parity = [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_warp_backend.py", "-o", "addopts=",
              f"--junitxml={parity_xml}", *(["-k", "protocol or standing"] if dry else [])]
    worlds = ["8"] if dry else ["1024", "2048", "4096", "8192"]
    bench_env = [py, "bench/run.py", "--no-cpu", "--worlds", *worlds, "--warp-device", dev, "--out",
                 str(work / "bench.json"), "--figure", str(work / "bench_env_scaling.png"),
                 *(["--control-steps", "3", "--rounds", "1"] if dry else ["--rounds", "2"])]
    bench_reward = [py, "bench/bench_reward.py", "--device", dev, "--out", str(work / "bench_reward.json"),
                    *(["--frames", "4", "--rounds", "1"] if dry else ["--frames", "256", "--rounds", "2"])]
    return [
        Step("warp_parity", parity, timeouts["warp_parity"], env=warp_env,
             collect=lambda r, c: junit_counts(parity_xml)),
        Step("bench_env", bench_env, timeouts["bench_env"], env={"OMP_NUM_THREADS": "1"},
             collect=lambda r, c: bench_env_numbers(work / "bench.json")),
        Step("bench_reward", bench_reward, timeouts["bench_reward"],
             collect=lambda r, c: json.loads((work / "bench_reward.json").read_text())["results"]),
        default,
        calm,
        eval_step("eval_default", "llc_default"),
        eval_step("eval_calm", "llc_calm"),
        Step("hlc_pose", [*cli, "train-hlc", "--pose-clip", POSE_CLIP, *hlc_size, *hlc_common,
                          *([] if dry else ["--epochs", "10"]), "--out", str(work / "hlc_pose")],
             timeouts["hlc_pose"], collect=lambda r, c: hlc_numbers(work / "hlc_pose", r)),
        Step("hlc_text", [*cli, "train-hlc", "--text", TEXT_PROMPT, "--clip-weights", pretrained_text,
                          "--reward-source", "render", "--render-interval", "5", "--render-envs",
                          "2" if dry else "256", *hlc_size, *hlc_common, *([] if dry else ["--epochs", "5"]),
                          "--out", str(work / "hlc_text")],
             timeouts["hlc_text"], collect=lambda r, c: hlc_numbers(work / "hlc_text", r)),
    ]


def shipped_llc_path() -> Path:
    from anyskill.llc.shipped import shipped_llc

    return shipped_llc()


# ------------------------------------------------------------------------------------------- machine, goals
def versions() -> dict[str, Any]:
    """Python, platform and the versions of the packages the GPU paths use, and ``nvidia-smi``'s report."""
    from importlib import metadata

    pkgs: dict[str, str | None] = {}
    for name in ("torch", "mujoco", "mujoco-warp", "warp-lang", "open_clip_torch", "rl-games", "numpy"):
        try:
            pkgs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pkgs[name] = None
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                            "cpu_count": os.cpu_count(), "packages": pkgs}
    try:
        import torch

        info["cuda_available"] = torch.cuda.is_available()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_cuda"] = torch.version.cuda
    except ImportError as e:
        info["torch_error"] = str(e)
    try:
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout or smi.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        info["nvidia_smi"] = f"not available: {e}"
    return info


def cpu_llc_samples_per_s() -> float | None:
    """The committed CPU rate of CALM training (``results/bench_llc.json``, laptop 64 envs, 1 thread)."""
    path = REPO_ROOT / "results" / "bench_llc.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text()).get("results", [])
    row = next((r for r in rows if r.get("num_envs") == 64 and r.get("torch_threads") == 1), rows[0] if rows else None)
    return float(row["samples_per_s"]) if row else None


def goals(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals as ratios (measured / goal for the minimums, goal / measured for the overhead), None where a
    step did not produce the number."""
    env = records.get("bench_env", {}).get("numbers", {})
    reward = records.get("bench_reward", {}).get("numbers", {})
    out: dict[str, Any] = {}
    if "env_over_backend_at_largest" in env:
        v = env["env_over_backend_at_largest"]
        out["env_overhead"] = {"measured": v, "goal_max": GOALS["env_over_backend_max"],
                               "met": v <= GOALS["env_over_backend_max"]}
    if "env_physics_steps_per_s_best" in env:
        v = env["env_physics_steps_per_s_best"]
        out["physics_steps_per_s"] = {"measured": v, "goal_min": GOALS["physics_steps_per_s_min"],
                                      "ratio": round(v / GOALS["physics_steps_per_s_min"], 4),
                                      "met": v >= GOALS["physics_steps_per_s_min"]}
    if "render_and_encode_fps" in reward:
        v = reward["render_and_encode_fps"]
        out["render_and_encode_fps"] = {"measured": v, "goal_min": GOALS["render_and_encode_fps_min"],
                                        "ratio": round(v / GOALS["render_and_encode_fps_min"], 4),
                                        "met": v >= GOALS["render_and_encode_fps_min"]}
    cpu = cpu_llc_samples_per_s()
    for name in ("llc_default", "llc_calm"):
        rate = records.get(name, {}).get("numbers", {}).get("samples_per_s")
        if rate:
            out[f"{name}_samples_per_s"] = {"measured": rate, "cpu_laptop_calm": cpu,
                                            "ratio_to_cpu": round(rate / cpu, 2) if cpu else None}
    return out


# ------------------------------------------------------------------------------------------- main
def add_gpu_check_command(sub) -> None:
    """Register ``gpu-check`` on the ``anyskill`` parser's sub-parsers."""
    p = sub.add_parser("gpu-check", help="one-shot GPU verification: every GPU path, each step under its own time "
                       "limit, at most 8 result files (scripts/gpu_check.sh installs first)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder for the (at most 8) result files")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (Warp's CPU device)")
    p.add_argument("--work", type=Path, help="folder for everything else (default: a new temporary folder)")
    p.add_argument("--only", nargs="+", choices=STEPS, help="run only these steps")
    p.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="leave these steps out")
    p.add_argument("--timeout", action="append", default=[], metavar="STEP=SECONDS", help="a step's time limit")
    p.add_argument("--train-seconds", action="append", default=[], metavar="STEP=SECONDS",
                   help="training budget of llc_default / llc_calm")
    p.add_argument("--total", type=float, help="seconds for all steps together (default 480; dry run 180)")
    p.add_argument("--slack", type=float, default=1.0,
                   help="multiply every step's time limit and the total (a loaded machine; not the training budgets)")
    p.add_argument("--install-record", type=Path, help="JSON written by gpu_check.sh about the install")
    p.add_argument("--commit", help="the commit being checked (where the copy has no .git)")
    p.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """The check with the options of ``anyskill gpu-check``; 0 when every chosen step ended ok (or was skipped)."""
    mode = "dry" if args.dry_run else "gpu"
    timeouts = {k: v * args.slack for k, v in (dict(DRY_TIMEOUTS if args.dry_run else GPU_TIMEOUTS)
                                                | _pairs(args.timeout)).items()}
    train_s = dict(TRAIN_SECONDS[mode]) | _pairs(args.train_seconds)
    total = (args.total or TOTAL[mode]) * args.slack
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file() and (old.name in ("summary.json", "gpu_check.log", "results.tar.gz")
                              or old.name.startswith(("llc_default.pth", "llc_calm.pth"))):
            old.unlink()
    work = (args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    machine = versions()
    print(json.dumps({k: v for k, v in machine.items() if k != "nvidia_smi"}), "\n" + str(machine["nvidia_smi"]),
          flush=True)
    packed: dict[str, Any] = {}
    error, text_weights, commit, plan = None, "random", args.commit or "unknown", []
    try:  # a failed install leaves the steps without their packages: the summary still says so
        commit = args.commit or git_commit()
        text_weights = clip_weights_for_text()
        plan = build_plan(work, out, args.dry_run, timeouts, train_s, packed, text_weights)
    except Exception as e:  # noqa: BLE001
        error = f"cannot plan the steps: {type(e).__name__}: {e}"
        print(f"[gpu_check] {error}", file=sys.stderr)
    chosen = [s for s in plan if (not args.only or s.name in args.only) and s.name not in args.skip]
    log_path = work / "gpu_check.log"
    with log_path.open("w") as log:
        log.write(json.dumps(machine, indent=1) + "\n")
        records = run_steps(chosen, total, log)
    by_name = {r["name"]: r for r in records}
    summary = {
        "kind": "gpu_check", "dry_run": args.dry_run, "started": started, "commit": commit, "error": error,
        "total_budget_s": total, "wall_s": round(time.perf_counter() - t0, 1), "machine": machine,
        "install": json.loads(args.install_record.read_text()) if args.install_record and
        args.install_record.is_file() else None,
        "clip_weights_text": text_weights, "train_seconds": train_s, "timeouts": timeouts,
        "steps": records, "goals": goals(by_name),
    }
    summary["files"] = write_outputs(out, work, log_path, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    states = {r["name"]: r["status"] for r in records}
    print(f"[gpu_check] done in {summary['wall_s']} s: {states}\n[gpu_check] wrote {sorted(summary['files'])} to {out}")
    return 0 if error is None and all(s in ("ok", "skipped") for s in states.values()) else 1


def _pairs(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        if name not in STEPS or not value:
            raise SystemExit(f"expected STEP=SECONDS with STEP one of {STEPS}, got {item!r}")
        out[name] = float(value)
    return out


def write_outputs(out: Path, work: Path, log_path: Path, summary: dict[str, Any]) -> dict[str, int]:
    """Bundle the small files, copy the (capped) log; returns {file name: bytes} of OUT (checked against the
    limits: at most 8 files of at most 16 MiB)."""
    members = {"bench.json": work / "bench.json", "bench_reward.json": work / "bench_reward.json",
               "bench_env_scaling.png": work / "bench_env_scaling.png", "warp_parity.xml": work / "warp_parity.xml"}
    for name in ("llc_default", "llc_calm"):
        members[f"{name}/train_info.json"] = run_dir_of(work, name) / "train_info.json"
    members["llc_default/summary.json"] = work / "llc_default" / "summary.json"  # the one-shot trainer's numbers
    for stem in ("tracker_curve.csv", "distill_curve.csv"):
        members[f"llc_default/{stem}"] = run_dir_of(work, "llc_default") / stem
    for name in ("eval_default", "eval_calm"):
        for f in sorted((work / name).glob("*")) if (work / name).is_dir() else []:
            members[f"{name}/{f.name}"] = f
    for name in ("hlc_pose", "hlc_text"):
        for stem in ("epoch_stats.csv", "train_info.json"):
            members[f"{name}/{stem}"] = work / name / stem
    summary["bundle"] = bundle(members, out / "results.tar.gz")
    log = log_path.read_bytes()
    if len(log) > MAX_FILE_BYTES - 2**20:  # keep the head (versions) and the tail (the last steps)
        half = (MAX_FILE_BYTES - 2**20) // 2
        log = log[:half] + b"\n[... cut ...]\n" + log[-half:]
    (out / "gpu_check.log").write_bytes(log)
    (out / "summary.json").write_text("{}")  # placeholder, counted below, rewritten by the caller
    files = {f.name: f.stat().st_size for f in out.iterdir() if f.is_file()}
    problems = [f"{n} is {b} bytes" for n, b in files.items() if b > MAX_FILE_BYTES]
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files (limit {MAX_FILES})")
    summary["limits_ok"] = not problems
    summary["limit_problems"] = problems
    return files

