"""The CPU route to the low-level interface: a tracker by PPO, then DAgger distillation (``train-llc --route
tracking``, the default at ``smoke`` and ``laptop``; CALM stays the ``paper`` route).

:func:`train_tracking_route` runs both stages into one folder and can be stopped and resumed at any point::

    out_dir/tracker.pth          the tracker π_T (stage 1; resumable)
    out_dir/tracker_curve.csv    per-iteration reward, tracking errors, throughput (+ evaluations)
    out_dir/llc.pth              the distilled controller: encoder E and π_L(a | s, z, τ) (stage 2) — load_llc(...)
    out_dir/distill_curve.csv    per-iteration action error, encoder terms, throughput (+ evaluations)
    out_dir/train_info.json      settings, samples, wall time of each stage

A wall-clock budget is split between the stages (``tracker_share`` for stage 1); each stage stops cleanly after
its running iteration with a checkpoint. Per-scale sizes: :func:`route_profile`.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from anyskill.llc.distill import DistillConfig, distill
from anyskill.llc.tracker import TrackerPPOConfig, load_tracker, train_tracker
from anyskill.llc.tracking import TrackingConfig


@dataclass(frozen=True)
class RouteProfile:
    """Sizes of the tracking route at one scale."""

    track: TrackingConfig
    ppo: TrackerPPOConfig
    distill: DistillConfig
    tracker_share: float = 0.6
    """fraction of a wall-clock budget given to the tracker."""


def route_profile(scale: str) -> RouteProfile:
    """``laptop``: 256 humanoids, 2 MuJoCo threads (the 2-core target), tracker [512, 256], student policy
    [512, 512, 256]; ``smoke``: tiny sizes that run every path in seconds; ``paper``: the laptop sizes with 4096
    envs (the route is not the paper's; CALM is)."""
    if scale == "smoke":
        return RouteProfile(
            track=TrackingConfig(num_envs=8, episode_length=60),
            ppo=TrackerPPOConfig(horizon=8, epochs=2, minibatch=32, actor_units=(64, 64), critic_units=(64, 64),
                                 total_samples=128, checkpoint_every_s=1e9),
            distill=DistillConfig(num_envs=8, horizon=8, total_samples=128, replay_size=1024, updates=2,
                                  minibatch=32, reg_batch=16, enc_units=(64,), policy_units=(64, 64),
                                  checkpoint_every_s=1e9),
        )
    envs = 4096 if scale == "paper" else 256
    return RouteProfile(
        track=TrackingConfig(num_envs=envs, num_threads=2),
        ppo=TrackerPPOConfig(total_samples=12_000_000, learn_threads=2),
        distill=DistillConfig(num_envs=envs, total_samples=4_000_000, learn_threads=2),
    )


def train_tracking_route(lib, out_dir: str | Path, scale: str = "laptop", time_budget_s: float | None = None,
                         tracker_samples: int | None = None, distill_samples: int | None = None,
                         num_envs: int | None = None, num_threads: int | None = None, seed: int = 0,
                         progress: bool = True, log_every: int = 0) -> dict:
    """Both stages of the route into ``out_dir`` (module docstring), resuming whatever is there. Returns the
    ``train_info.json`` dict."""
    torch.set_num_threads(1)
    prof = route_profile(scale)
    envs: dict[str, Any] = {"num_envs": num_envs} if num_envs else {}
    threads: dict[str, Any] = {"num_threads": num_threads} if num_threads else {}
    track = replace(prof.track, seed=seed, **envs, **threads)
    ppo = replace(prof.ppo, total_samples=tracker_samples or prof.ppo.total_samples)
    dcfg = replace(prof.distill, **envs)
    dcfg = replace(dcfg, total_samples=distill_samples or dcfg.total_samples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info.update({"route": "tracking", "scale": scale, "seed": seed, "clips": lib.clip_names,
                 "tracking": asdict(track), "ppo": asdict(ppo), "distill": asdict(dcfg)})
    start = time.time()
    tracker_path = out / "tracker.pth"
    done_tracker = tracker_path.is_file() and torch.load(tracker_path, map_location="cpu",
                                                         weights_only=False)["samples"] >= ppo.total_samples
    if not done_tracker:
        budget = None if time_budget_s is None else time_budget_s * prof.tracker_share
        run = train_tracker(lib, out, track, ppo, resume=tracker_path if tracker_path.is_file() else None,
                            time_budget_s=budget, seed=seed, progress=progress, log_every=log_every)
        info["tracker"] = {"samples": run.samples, "wall_s": info.get("tracker", {}).get("wall_s", 0.0) + run.wall_s}
        info_path.write_text(json.dumps(info, indent=1))
    teacher, teacher_track = load_tracker(tracker_path)
    left = None if time_budget_s is None else max(time_budget_s - (time.time() - start), 1.0)
    llc_path = out / "llc.pth"
    drun = distill(lib, teacher, replace(teacher_track, num_threads=track.num_threads), out, dcfg,
                   resume=llc_path if llc_path.is_file() else None, time_budget_s=left, seed=seed,
                   progress=progress)
    info["distill"] = {**asdict(dcfg), "samples": drun.samples,
                       "wall_s": info.get("distill_wall_s", 0.0) + drun.wall_s}
    info["distill_wall_s"] = info["distill"]["wall_s"]
    info_path.write_text(json.dumps(info, indent=1))
    return info
