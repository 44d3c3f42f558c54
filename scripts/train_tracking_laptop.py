"""Train the laptop tracking-route controller (tracker, then distillation) with evaluation curves.

Usage: python scripts/train_tracking_laptop.py OUT_DIR [--stage tracker|distill|both] [--budget-min M]
Resumes whatever OUT_DIR holds. Writes OUT_DIR/tracker_curve.csv and distill_curve.csv with held-out evaluations
(every clip from its first frame; the distilled student's held skills and sliding replay) every few iterations.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from anyskill.config.tracking import route_profile
from anyskill.data import default_library
from anyskill.llc.tracking.distill import distill
from anyskill.llc.tracking.tracker import evaluate_tracker, load_tracker, train_tracker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--stage", default="both", choices=["tracker", "distill", "both"])
    ap.add_argument("--budget-min", type=float, default=60.0)
    ap.add_argument("--tracker-samples", type=int, default=None)
    ap.add_argument("--distill-samples", type=int, default=None)
    ap.add_argument("--eval-every", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="MuJoCo and learner threads (default: the profile's 2)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lib = default_library()
    prof = route_profile("laptop")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = {"num_threads": args.threads} if args.threads else {}
    learn = {"learn_threads": args.threads} if args.threads else {}
    track = replace(prof.track, seed=args.seed, **threads)
    if args.stage in ("tracker", "both"):
        ppo = replace(prof.ppo, eval_every_iters=args.eval_every, **learn,
                      **({"total_samples": args.tracker_samples} if args.tracker_samples else {}))

        def ev(net, samples):
            r = evaluate_tracker(net, lib, track)
            s = evaluate_tracker(net, lib, track, standing=True)
            fin = ",".join(x["clip"] for x in r["per_clip"] if x["finished"])
            print(f"[eval {samples}] first frame: finished {r['finished']:.2f} err {r['local_error_m']:.3f} | "
                  f"standing: finished {s['finished']:.2f} err {s['local_error_m']:.3f} | {fin}", flush=True)
            return {"eval_finished": r["finished"], "eval_local_error_m": r["local_error_m"],
                    "eval_stand_finished": s["finished"], "eval_stand_local_error_m": s["local_error_m"],
                    "eval_finished_clips": fin}

        path = out / "tracker.pth"
        t0 = time.time()
        run = train_tracker(lib, out, track, ppo, resume=path if path.is_file() else None,
                            time_budget_s=args.budget_min * 60, seed=args.seed, progress=False, evaluate=ev,
                            log_every=5)
        print(json.dumps({"tracker_samples": run.samples, "wall_s": time.time() - t0}))
        _record(out, tracker_wall_s=time.time() - t0, tracker_samples=run.samples)
    if args.stage in ("distill", "both"):
        from anyskill.llc.controller import load_llc
        from anyskill.llc.latent_checks import evaluate_sliding
        from anyskill.llc.skills import evaluate_skills

        teacher, teacher_track = load_tracker(out / "tracker.pth")
        dcfg = replace(prof.distill, eval_every_iters=args.eval_every, **learn,
                       **({"total_samples": args.distill_samples} if args.distill_samples else {}))

        def evs(ckpt, samples):
            llc = load_llc(ckpt)
            sk = evaluate_skills(llc, lib, seconds=10.0, idle_seconds=10.0).summary
            sl = evaluate_sliding(llc, lib)
            print(f"[eval {samples}] held: up {sk['survival_rate']:.2f} top1 {sk['top1_accuracy']:.2f} | sliding: "
                  f"finished {int(sl['finished'].sum())}/{len(sl)} err {sl['local_error_m'].mean():.3f}", flush=True)
            return {"eval_survival": sk["survival_rate"], "eval_top1": sk["top1_accuracy"],
                    "eval_sliding_finished": int(sl["finished"].sum()),
                    "eval_sliding_error_m": float(sl["local_error_m"].mean())}

        path = out / "llc.pth"
        t0 = time.time()
        drun = distill(lib, teacher, replace(teacher_track, num_threads=track.num_threads), out, dcfg,
                       resume=path if path.is_file() else None, time_budget_s=args.budget_min * 60, seed=args.seed,
                       progress=False, evaluate=evs, log_every=5)
        print(json.dumps({"distill_samples": drun.samples, "wall_s": time.time() - t0}))
        _record(out, distill_wall_s=time.time() - t0, distill_samples=drun.samples)


def _record(out: Path, **values: float) -> None:
    """Add the wall times of this invocation to out/train_info.json (summed over resumed invocations)."""
    path = out / "train_info.json"
    info = json.loads(path.read_text()) if path.is_file() else {"route": "tracking", "scale": "laptop"}
    for k, v in values.items():
        info[k] = info.get(k, 0.0) + v if k.endswith("wall_s") else v
    path.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
