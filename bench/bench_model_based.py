"""The model-based tracker against the PPO tracker (issue 28): real samples to finish a clip, one clip at a time.

For each clip and each method, a tracker is trained on that clip alone and evaluated every ``--eval-every`` real
samples with :func:`~anyskill.llc.tracking.tracker.evaluate_tracker` (MuJoCo C, deterministic), from the clip's first
frame and from the standing pose: finished?, fall time, root-relative body error before any fall. Samples-to-finish is
the first evaluation at which both starts finish the clip.

- ``ppo``: today's tracker (:func:`train_tracker`), the settings of the kick learning test (64 humanoids, horizon 32,
  4 epochs of 512-sample minibatches, KL target 0.02, actor [256, 128]);
- ``model_based``: :func:`train_model_based_tracker` (256 humanoids, :class:`ModelBasedConfig`'s defaults, the same
  actor sizes, ``policy_rollout`` as ``--rollout``).

Both use one MuJoCo thread and one torch thread; ``--jobs 2`` runs two trainings at once (the wall times then share
the machine). Results (curves, samples-to-finish, wall times) go to
``results/tracker_model_based.json`` after every run, and the figure to ``figures/02_model_based_vs_ppo.png``::

    .venv/bin/python bench/bench_model_based.py --jobs 2    # kick 400 k, amp_humanoid_walk 1 M samples: ~40 min
    .venv/bin/python bench/bench_model_based.py --runs kick:6000 --eval-every 3000 --no-write   # a check that it runs
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("ppo", "model_based")


def _seconds(t: float) -> float | None:
    """A fall time, or None where the clip was finished (JSON has no NaN)."""
    return None if math.isnan(t) else round(t, 3)


def train_one(method: str, clip: str, samples: int, eval_every: int, seed: int, rollout: str) -> dict:
    """One training run on ``clip``: its evaluation curve and wall time."""
    import torch

    from anyskill.config.tracking import ModelBasedConfig, TrackerPPOConfig, TrackingConfig
    from anyskill.llc.motions import load_motions
    from anyskill.llc.tracking.env import TrackingEnv
    from anyskill.llc.tracking.model_based import train_model_based_tracker
    from anyskill.llc.tracking.tracker import Tracker, evaluate_tracker, train_tracker
    from anyskill.motion.library import MotionLibrary

    torch.set_num_threads(1)
    full, _ = load_motions(None)
    if clip not in full.clip_names:
        raise SystemExit(f"unknown clip {clip!r}; bundled: {', '.join(full.clip_names)}")
    lib = MotionLibrary([full.clips[full.clip_names.index(clip)]])
    units = (256, 128)
    evals: list[dict] = []

    def evaluate(net, n: int) -> dict:
        row: dict = {"samples": n}
        for start, standing in (("first", False), ("standing", True)):
            r = evaluate_tracker(net, lib, track, standing=standing)
            row.update({f"finished_{start}": r["finished"], f"error_{start}_m": r["local_error_m"],
                        f"fall_{start}_s": _seconds(r["per_clip"][0]["fall_time_s"])})
        evals.append(row)
        return {}

    track = TrackingConfig(num_envs=1)  # the evaluation sets its own worlds, episode length and seed
    probe = TrackingEnv(track, lib)
    replay = Tracker(probe.num_obs, probe.num_actions, units, units).eval()
    torch.nn.init.zeros_(replay.actor[-1].weight)  # both methods start near a zero residual: the PD replay at 0
    torch.nn.init.zeros_(replay.actor[-1].bias)
    evaluate(replay, 0)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_mb_") as tmp:
        if method == "ppo":
            track = TrackingConfig(num_envs=64, episode_length=120, seed=seed)
            ppo = TrackerPPOConfig(horizon=32, epochs=4, minibatch=512, actor_units=units, critic_units=units,
                                   total_samples=samples, kl_target=0.02,
                                   eval_every_iters=max(1, eval_every // (64 * 32)))
            run = train_tracker(lib, tmp, track, ppo, seed=seed, evaluate=evaluate)
        else:
            track = TrackingConfig(num_envs=256, episode_length=120, seed=seed)
            cfg = ModelBasedConfig(total_samples=samples, eval_every_samples=eval_every, actor_units=units,
                                   critic_units=units, policy_rollout=rollout)
            run = train_model_based_tracker(lib, tmp, track, cfg, seed=seed, evaluate=evaluate)
    wall = time.perf_counter() - t0
    done = [e["samples"] for e in evals if e["finished_first"] == 1.0 and e["finished_standing"] == 1.0]
    keys = ("reward", "local_error_m", "model_loss", "policy_loss")
    train_curve = [{"samples": r["samples"], **{k: r[k] for k in keys if k in r}} for r in run.curve]
    return {"method": method, "clip": clip, "samples": run.samples, "seed": seed, "wall_s": round(wall, 1),
            "samples_to_finish": done[0] if done else None, "evaluations": evals, "training_curve": train_curve}


def _record(runs: list[dict], note: str) -> dict:
    keys = ("clip", "method", "samples", "wall_s", "samples_to_finish")
    return {"summary": [{k: r[k] for k in keys} for r in runs], "runs": runs, "note": note}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", default=["kick:400000", "amp_humanoid_walk:1000000"], help="clip:real_samples")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--eval-every", type=int, default=50_000, help="real samples between evaluations")
    p.add_argument("--rollout", default="corrected", choices=("model", "corrected"),
                   help="the model-based tracker's policy_rollout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="trainings run at once (processes of one thread each)")
    p.add_argument("--note", default="", help="how the machine was loaded")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "tracker_model_based.json")
    p.add_argument("--figure", type=Path, default=ROOT / "figures" / "02_model_based_vs_ppo.png")
    args = p.parse_args()
    plan = []
    for spec in args.runs:
        clip, _, n = spec.partition(":")
        if not n.isdigit():
            raise SystemExit(f"--runs takes clip:samples, got {spec!r}")
        plan += [(m, clip, int(n)) for m in args.methods]
    from anyskill.provenance import Provenance

    prov = Provenance("bench/bench_model_based.py", seed=args.seed, config={
        "runs": args.runs, "methods": args.methods, "eval_every": args.eval_every, "rollout": args.rollout,
        "threads": 1, "jobs": args.jobs})
    runs: list[dict] = []
    pool = ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) if args.jobs > 1 else None
    jobs = [(m, clip, n, args.eval_every, args.seed, args.rollout) for m, clip, n in plan]
    results = pool.map(train_one, *zip(*jobs, strict=True)) if pool else (train_one(*j) for j in jobs)
    for r in results:
        runs.append(r)
        last = r["evaluations"][-1] if r["evaluations"] else {}
        print(f"{r['clip']} {r['method']}: {r['samples']} samples in {r['wall_s']:.0f} s, samples to finish "
              f"{r['samples_to_finish']}, last evaluation {json.dumps(last)}", flush=True)
        if not args.no_write:  # after every run, so that a stopped benchmark keeps what it measured
            prov.write_json(_record(runs, args.note), args.out)
    if not args.no_write:
        prov.finish().write_json(_record(runs, args.note), args.out)
        import matplotlib

        matplotlib.use("Agg")
        from anyskill.viz.llc_eval import plot_tracker_comparison

        prov.save_figure(plot_tracker_comparison(runs, title="model-based vs PPO tracker, one clip each"), args.figure)
        print(f"-> {args.out}, {args.figure}")


if __name__ == "__main__":
    main()
