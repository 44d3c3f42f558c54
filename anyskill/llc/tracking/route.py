"""The tracking route to the low-level interface: a tracker by PPO (or, as an option, through a learnt world model:
:mod:`~anyskill.llc.tracking.model_based`), then DAgger distillation (``train-llc --route
tracking``, the default at ``smoke`` and ``laptop``, and on a GPU with the ``gpu`` sizes; CALM stays the ``paper``
route). It runs on the device it is given: MuJoCo C on the CPU, MuJoCo Warp on a GPU.

:func:`train_tracking_route` runs both stages into one folder and can be stopped and resumed at any point::

    out_dir/tracker.pth          the tracker π_T (stage 1; resumable)
    out_dir/tracker_curve.csv    per-iteration reward, tracking errors, throughput (+ evaluations)
    out_dir/llc.pth              the distilled controller: encoder E and π_L(a | s, z, τ) (stage 2) — load_llc(...)
    out_dir/distill_curve.csv    per-iteration action error, encoder terms, throughput (+ evaluations)
    out_dir/train_info.json      settings, samples, wall time of each stage

A wall-clock budget is split between the stages (``tracker_share`` for stage 1); each stage stops cleanly after
its running iteration with a checkpoint. Per-scale sizes: :func:`route_profile`.

Under ``torchrun --nproc-per-node N`` both stages train data-parallel (:mod:`anyskill.llc.distributed`): N
processes of ``num_envs`` worlds each, sample counts over all of them; rank 0 writes every file.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from anyskill.config.tracking import TrackingConfig, route_profile
from anyskill.llc import distributed as ddp
from anyskill.llc.tracking.distill import distill
from anyskill.llc.tracking.model_based import train_model_based_tracker
from anyskill.llc.tracking.tracker import Tracker, evaluate_tracker, load_tracker, train_tracker
from anyskill.motion.library import MotionLibrary


def tracked_clips(tracker: Tracker, lib: MotionLibrary, track: TrackingConfig, seed: int = 0) -> list[str]:
    """The clips ``tracker`` finishes without a fall both from their first frame and from the standing pose
    (:func:`~anyskill.llc.tracking.tracker.evaluate_tracker`, deterministic), in library order."""
    first = evaluate_tracker(tracker, lib, track, seed=seed)["per_clip"]
    standing = evaluate_tracker(tracker, lib, track, standing=True, seed=seed)["per_clip"]
    return [a["clip"] for a, b in zip(first, standing, strict=True) if a["finished"] and b["finished"]]


def train_tracking_route(lib, out_dir: str | Path, scale: str = "laptop", time_budget_s: float | None = None,
                         tracker_samples: int | None = None, distill_samples: int | None = None,
                         num_envs: int | None = None, num_threads: int | None = None, seed: int = 0,
                         progress: bool = True, log_every: int = 0, device: str | None = None,
                         backend: str | None = None, tracker: str = "ppo",
                         switch_clips: Sequence[str] | None = None,
                         distill_settings: dict[str, Any] | None = None) -> dict:
    """Both stages of the route into ``out_dir`` (module docstring), resuming whatever is there. Returns the
    ``train_info.json`` dict. ``scale``: a :data:`~anyskill.config.tracking.ROUTE_PROFILES` name; ``device``
    (default: the profile's) and ``backend`` ("mujoco" | "warp" | "auto") override the profile's. ``tracker``:
    "ppo" (the default) or "model_based" (:mod:`anyskill.llc.tracking.model_based`, an option measured in
    ``docs/model_based_tracker.md``; same samples, same checkpoint, same distillation). ``switch_clips``: the clips
    the student's switch and random latent regimes go to (:class:`~anyskill.config.tracking.DistillConfig`); the
    single name "tracked" picks the clips the trained tracker finishes both from their first frame and from
    standing (:func:`tracked_clips`). ``distill_settings``: other :class:`~anyskill.config.tracking.DistillConfig`
    fields for the student's stage (e.g. the regime probabilities; recorded in ``train_info.json``)."""
    if tracker not in ("ppo", "model_based"):
        raise ValueError(f"tracker must be 'ppo' or 'model_based', got {tracker!r}")
    torch.set_num_threads(1)
    prof = route_profile(scale)
    envs: dict[str, Any] = {"num_envs": num_envs} if num_envs else {}
    threads: dict[str, Any] = {"num_threads": num_threads} if num_threads else {}
    where: dict[str, Any] = {"device": device} if device else {}
    where.update({"backend": backend} if backend else {})
    track = replace(prof.track, seed=seed, **envs, **threads, **where)
    ppo = replace(prof.ppo, total_samples=tracker_samples or prof.ppo.total_samples)
    mb = replace(prof.model_based, total_samples=ppo.total_samples)
    dcfg = replace(prof.distill, **envs)
    dcfg = replace(dcfg, **{"total_samples": distill_samples or dcfg.total_samples, **(distill_settings or {})})
    if ddp.world_size() > 1 and torch.device(track.device).type == "cpu":  # data-parallel: the cores are shared
        share = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", ddp.world_size())))
        track = replace(track, num_threads=num_threads or min(track.num_threads, share))
        ppo = replace(ppo, learn_threads=min(ppo.learn_threads, share))
        dcfg = replace(dcfg, learn_threads=min(dcfg.learn_threads, share))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    info_path = out / "train_info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    info.update({"route": "tracking", "scale": scale, "seed": seed, "clips": lib.clip_names, "tracker_method": tracker,
                 "tracking": asdict(track), "ppo": asdict(ppo), "distill": asdict(dcfg)})
    if tracker == "model_based":
        if ddp.world_size() > 1:
            raise ValueError("the model-based tracker trains in one process (no torchrun)")
        info["model_based"] = asdict(mb)
    start = time.time()
    tracker_path = out / "tracker.pth"
    before = torch.load(tracker_path, map_location="cpu", weights_only=False) if tracker_path.is_file() else None
    if before is not None and before.get("method", "ppo") != tracker:
        raise ValueError(f"{tracker_path} was trained by the {before.get('method', 'ppo')} tracker, not {tracker}: "
                         "use another --out")
    done_tracker = before is not None and before["samples"] >= ppo.total_samples
    main = ddp.is_main()  # data-parallel (issue 29): rank 0 writes train_info.json and logs
    if log_every and main:
        print(f"tracking route: scale {scale}, device {track.device}, backend {track.backend}, "
              f"{track.num_envs} humanoids x {ddp.world_size()} process(es)", flush=True)
    if not done_tracker:
        budget = None if time_budget_s is None else time_budget_s * prof.tracker_share
        resume = tracker_path if tracker_path.is_file() else None
        if tracker == "model_based":
            run = train_model_based_tracker(lib, out, track, mb, resume=resume, time_budget_s=budget, seed=seed,
                                            progress=progress, log_every=log_every)
        else:
            run = train_tracker(lib, out, track, ppo, resume=resume, time_budget_s=budget, seed=seed,
                                progress=progress, log_every=log_every)
        info["tracker"] = {"samples": run.samples, "wall_s": info.get("tracker", {}).get("wall_s", 0.0) + run.wall_s}
        if main:
            info_path.write_text(json.dumps(info, indent=1))
    teacher, teacher_track = load_tracker(tracker_path)
    if switch_clips:
        names = list(switch_clips)
        if names == ["tracked"]:
            names = tracked_clips(teacher, lib, teacher_track, seed=seed)
            if not names:
                raise ValueError(f"the tracker {tracker_path} finishes no clip: no window for the switch regimes")
            if log_every and main:
                print(f"switch and random latents go to the {len(names)} tracked clips: {', '.join(names)}",
                      flush=True)
        dcfg = replace(dcfg, switch_clips=tuple(names))
    left = None if time_budget_s is None else max(time_budget_s - (time.time() - start), 1.0)
    llc_path = out / "llc.pth"
    drun = distill(lib, teacher, replace(teacher_track, num_threads=track.num_threads, device=track.device,
                                         backend=track.backend), out, dcfg,
                   resume=llc_path if llc_path.is_file() else None, time_budget_s=left, seed=seed,
                   progress=progress, log_every=log_every)
    info["distill"] = {**asdict(dcfg), "samples": drun.samples,
                       "wall_s": info.get("distill_wall_s", 0.0) + drun.wall_s}
    info["distill_wall_s"] = info["distill"]["wall_s"]
    info["processes"] = ddp.world_size()
    if main:
        info_path.write_text(json.dumps(info, indent=1))
    return info
