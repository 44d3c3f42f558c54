"""One level up: high-level policies on pose goals of 5 clips, on each low-level controller, before vs after training.

    .venv/bin/python scripts/hlc_pose_comparison.py [--epochs 60] [--envs 32] [--only calm|tracking]

For each clip (its middle frame is the goal, :class:`anyskill.hlc.pose_goal.PoseGoal`) and each controller (the shipped
tracking-route controller and the CALM one it replaced) trains π_H at the `laptop` profile with fewer epochs and envs
(the numbers are in the output's provenance), then measures the mean pose error (m) of 8 deterministic 2-s rollouts
from standing for the untrained and the trained policy. Writes results/llc_hlc_pose_goals.csv.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
CLIPS = ("authored_raise_both_arms", "authored_squat", "authored_bow", "authored_kick", "authored_wave_right_hand")
CONTROLLERS = {"tracking route (shipped)": "anyskill/checkpoints/llc_laptop.pth",
               "CALM (previous)": "anyskill/checkpoints/llc_calm_laptop.pth"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--envs", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "llc_hlc_pose_goals.csv")
    ap.add_argument("--only", choices=["calm", "tracking"], help="run one controller, keep the other's rows in --out")
    args = ap.parse_args(argv)
    controllers = {k: v for k, v in CONTROLLERS.items() if args.only is None or args.only in k.lower()}
    torch.set_num_threads(1)
    from anyskill.hlc.goal_spec import find_clip
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.hlc.rollout import evaluate
    from anyskill.hlc.train import train_hlc
    from anyskill.provenance import Provenance

    prov = Provenance("scripts/hlc_pose_comparison.py", config={"epochs": args.epochs, "envs": args.envs,
                                                                "clips": CLIPS, "controllers": controllers},
                      seed=args.seed, clip_weights="none (pose goals)")
    rows = []
    for clip in CLIPS:
        goal = PoseGoal.from_clip(find_clip(clip))
        for label, ckpt in controllers.items():
            t0 = time.time()
            with tempfile.TemporaryDirectory() as tmp:
                run = train_hlc(goal, ROOT / ckpt, scale="laptop", out_dir=tmp, seed=args.seed, num_envs=args.envs,
                                max_epochs=args.epochs, progress=False)
                before = evaluate(run.initial_checkpoint, ROOT / ckpt, goal, seed=args.seed)
                after = evaluate(run.checkpoint, ROOT / ckpt, goal, seed=args.seed)
            rows.append({"goal_clip": clip, "controller": label, "pose_error_untrained_m": before.mean_pose_error,
                         "pose_error_trained_m": after.mean_pose_error, "train_s": round(time.time() - t0, 1)})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    if args.only and args.out.is_file():
        old = pd.read_csv(args.out, comment="#")
        header = [ln[2:].strip() for ln in args.out.read_text().splitlines() if ln.startswith("# ")]
        prov.config["kept_rows_from"] = {"controllers": sorted(set(old["controller"]) - set(controllers)),
                                         "provenance": header}
        df = pd.concat([old[~old["controller"].isin(list(controllers))], df], ignore_index=True)
    prov.finish().write_csv(df, args.out)
    print(df.groupby("controller")[["pose_error_untrained_m", "pose_error_trained_m"]].mean())
    return 0


if __name__ == "__main__":
    sys.exit(main())
