"""The ``anyskill`` command. Sub-commands grow with the project; ``anyskill --help`` lists them."""

from __future__ import annotations

import argparse
import sys

from anyskill.config import SCALES, profile
from anyskill.config.eval import LATENT_CHECK_ENVS
from anyskill.config.hlc import LATENT_ACTIONS


def _reproduce(args: argparse.Namespace) -> int:
    from anyskill.reproduce import reproduce

    return reproduce(scale=args.scale, out=args.out, only=args.only, seed=args.seed, device=args.device,
                     executor=args.executor, ray_address=args.ray_address, latent_action=args.latent_action,
                     anchor_scale=args.anchor_scale)


def _build_data(args: argparse.Namespace) -> int:
    from anyskill.data.build import build_bundled_data

    build_bundled_data(shared=args.shared, verbose=True)
    return 0


def _convert(args: argparse.Namespace) -> int:
    from anyskill.motion import load_motion

    clip = load_motion(args.input)
    path = clip.save(args.output)
    print(f"{args.input} -> {path}: {clip.num_frames} frames at {clip.fps:g} fps ({clip.duration:.2f} s)")
    conv = clip.meta.get("conversion") or clip.meta.get("retarget")
    if conv:
        print(f"  conversion report: {conv}")
    return 0


def _train_llc(args: argparse.Namespace) -> int:
    route = args.route or ("calm" if args.scale == "paper" else "tracking")
    from anyskill.llc import distributed as ddp

    if ddp.launched_by_torchrun():  # torchrun --nproc-per-node N: data-parallel, NCCL on GPUs, gloo on CPUs
        from anyskill.rl.runner import resolve_device

        default = resolve_device(args.device, args.scale) if route == "calm" else "cpu"
        args.device = ddp.init_from_env(args.device or default)  # cuda:<LOCAL_RANK> on GPUs
    try:
        return _train_llc_route(args, route)
    finally:
        ddp.shutdown()


def _train_llc_route(args: argparse.Namespace, route: str) -> int:
    from anyskill.llc import distributed as ddp

    if route == "tracking":
        from anyskill.llc.motions import load_motions
        from anyskill.llc.tracking.route import train_tracking_route

        if args.resume or args.epochs:
            raise ValueError("--resume/--epochs apply to --route calm; the tracking route resumes from whatever "
                             "--out holds and is sized by --tracker-samples/--distill-samples")
        from anyskill.config.tracking import distill_overrides

        settings = distill_overrides(args.distill_set or [])
        lib, _ = load_motions(args.motions)
        # on a GPU the laptop/paper sizes give way to the gpu profile (thousands of Warp worlds, large batches)
        on_gpu = (args.device or "cpu").startswith("cuda")
        sizes = "gpu" if on_gpu and args.scale != "smoke" else args.scale
        out = args.out or f"runs/llc_tracking_{sizes}"
        info = train_tracking_route(lib, out, scale=sizes, time_budget_s=args.time_budget,
                                    tracker_samples=args.tracker_samples, distill_samples=args.distill_samples,
                                    num_envs=args.envs, num_threads=args.threads, seed=args.seed,
                                    progress=not args.no_progress, device=args.device or "cpu",
                                    backend=args.backend, tracker=args.tracker, switch_clips=args.switch_clips,
                                    distill_settings=settings)
        if ddp.is_main():
            print(f"tracker: {info['tracker']['samples'] if 'tracker' in info else 'done before'} samples; "
                  f"student: {info['distill']['samples']} samples")
            print(f"checkpoint: {out}/llc.pth (tracker: {out}/tracker.pth)")
        return 0
    from anyskill.llc.calm.train import train_llc

    result = train_llc(scale=args.scale, motions=args.motions, out_dir=args.out, num_envs=args.envs,
                       max_epochs=args.epochs, seed=args.seed, device=args.device, resume=args.resume,
                       progress=not args.no_progress, backend=args.backend, time_budget_s=args.time_budget,
                       checkpoint_every_s=args.checkpoint_every)
    if ddp.is_main():
        print(f"trained {result.epochs} epochs, {result.samples} samples in {result.wall_time_s:.0f} s")
        print(f"checkpoint: {result.checkpoint}\ntensorboard: {result.tensorboard_dir}")
    return 0


def _eval_llc(args: argparse.Namespace) -> int:
    import torch

    from anyskill.llc.evaluate import evaluate_llc, summarize
    from anyskill.provenance import Provenance
    from anyskill.viz.llc_eval import write_llc_eval

    torch.set_num_threads(1)
    checkpoint = None if args.checkpoint == "untrained" else args.checkpoint
    prov = Provenance("anyskill eval-llc", config={"checkpoint": args.checkpoint, "motions": args.motions,
                                                    "seconds": args.seconds, "baseline": args.baseline,
                                                    **({"anchor_scales": args.anchor_scales} if args.anchor_scales
                                                       else {})}, seed=args.seed)
    df = evaluate_llc(checkpoint, motions=args.motions, seconds=args.seconds, seed=args.seed, baseline=args.baseline)
    csv, png = write_llc_eval(df, args.out, prov.finish())
    print(summarize(df).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"wrote {csv} and {png}")
    if args.skills:
        from anyskill.llc.evaluate import resolve_controller
        from anyskill.llc.motions import load_motions
        from anyskill.llc.skills import evaluate_skills
        from anyskill.viz.llc_eval import write_skill_eval

        llc, _ = resolve_controller(checkpoint, args.seed)
        lib, _ = load_motions(args.motions)
        result = evaluate_skills(llc, lib, seconds=args.skill_seconds, idle_seconds=args.idle_seconds, seed=args.seed)
        s = result.summary
        files = write_skill_eval(result, args.out, prov.finish(), title=f"held-out skills: {args.checkpoint}")
        idle = ("no idle clip" if s["idle_survived"] is None else
                f"idle latent {'stands' if s['idle_survived'] else 'falls within'} {s['idle_seconds']:g} s")
        print(f"held-out skills ({s['clips']} latents, {s['seconds']:g} s from standing): stay up "
              f"{s['survival_rate']:.0%}, "
              f"identified top-1 {s['top1_accuracy']:.0%} (chance {s['chance']:.0%}), own-clip pose distance "
              f"{s['mean_own_distance_m']:.3f} m; {idle}")
        print("wrote " + ", ".join(str(f) for f in files))
    if args.sliding or args.random_latents or args.tracker:
        _eval_interface(args, checkpoint, prov)
    return 0


def _finetune_llc(args: argparse.Namespace) -> int:
    """``anyskill finetune-llc``: the RL fine-tune of a distilled controller on random and switching latents."""
    from dataclasses import replace
    from pathlib import Path

    from anyskill.config.tracking import LatentFinetuneConfig, field_overrides
    from anyskill.llc.motions import load_motions
    from anyskill.llc.tracking.latent_finetune import latent_finetune

    settings = field_overrides(LatentFinetuneConfig, args.set or [], "--set")
    if args.samples:
        settings["total_samples"] = args.samples
    cfg = replace(LatentFinetuneConfig(), **settings)
    lib, _ = load_motions(args.motions)
    run = latent_finetune(lib, args.checkpoint, args.out, cfg, time_budget_s=args.time_budget, seed=args.seed,
                          progress=not args.no_progress, log_every=args.log_every)
    print(f"{run.samples} samples in {run.wall_s:.0f} s -> {run.checkpoint} "
          f"(curve: {Path(args.out) / 'latent_finetune_curve.csv'})")
    return 0


def _latent_robustness(args: argparse.Namespace) -> int:
    """``anyskill latent-robustness``: random and untrained-π_H latents of each controller over several seeds, rows
    of other controllers kept from ``--out``."""
    from pathlib import Path

    import pandas as pd
    import torch

    from anyskill.llc import load_llc
    from anyskill.llc.latent_checks import ROBUSTNESS_COLUMNS, latent_robustness
    from anyskill.llc.motions import load_motions
    from anyskill.llc.prior import latent_prior
    from anyskill.provenance import Provenance, git_commit

    torch.set_num_threads(1)
    pairs = [c.partition("=") for c in args.controller]
    if any(not sep or not label or not path for label, sep, path in pairs):
        raise ValueError(f"--controller takes LABEL=CHECKPOINT, got {args.controller}")
    lib, _ = load_motions(args.motions)
    prov = Provenance("anyskill latent-robustness", config={"controllers": args.controller, "envs": args.envs,
                                                             "anchor_scale": args.anchor_scale,
                                                             "seconds": args.seconds}, seed=args.seeds)
    out = Path(args.out)
    kept = pd.read_csv(out, comment="#") if out.is_file() else pd.DataFrame()
    labels = [label for label, _, _ in pairs]
    frames = [kept[~kept["controller"].isin(labels)]] if len(kept) else []
    for label, _, path in pairs:
        llc = load_llc(path)
        df = latent_robustness(llc, lib, latent_prior(llc, lib), args.seeds, args.envs, args.anchor_scale,
                               args.seconds)
        df.insert(0, "checkpoint", path)
        df.insert(0, "controller", label)
        df["commit"] = git_commit()
        frames.append(df)
        stats = "; ".join(f"{c} {df[c].mean():.0%} ({df[c].min():.0%}-{df[c].max():.0%})" for c in ROBUSTNESS_COLUMNS)
        print(f"{label}: stay up over seeds {args.seeds} x {args.envs} characters: {stats}", flush=True)
    prov.finish().write_csv(pd.concat(frames, ignore_index=True), out)
    print(f"wrote {out}")
    return 0


def _eval_interface(args: argparse.Namespace, checkpoint, prov) -> None:
    """The sliding-latent, random-latent (with an untrained high-level policy's latents, free and anchored) and
    tracker checks of ``eval-llc`` (anyskill.llc.latent_checks)."""
    import json
    from pathlib import Path

    from anyskill.llc.evaluate import resolve_controller
    from anyskill.llc.latent_checks import evaluate_random_latents, evaluate_sliding
    from anyskill.llc.motions import load_motions

    llc, _ = resolve_controller(checkpoint, args.seed)
    lib, _ = load_motions(args.motions)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"provenance": prov.finish().as_dict()}
    if args.sliding:
        df = evaluate_sliding(llc, lib, seed=args.seed)
        df.to_csv(out / "llc_sliding.csv", index=False)
        summary["sliding"] = {"finished": int(df["finished"].sum()), "clips": len(df),
                              "mean_local_error_m": float(df["local_error_m"].mean())}
        print(f"sliding latents from each clip's first frame: {int(df['finished'].sum())}/{len(df)} finished "
              f"without a fall, mean root-relative body error {df['local_error_m'].mean():.3f} m")
    if args.random_latents:
        r = evaluate_random_latents(llc, lib, num=args.latent_envs, seed=args.seed)
        summary["random_latents"] = r
        print(f"random unit latents from standing, {r['num']:.0f} characters, {r['seconds']:g} s: held stay up "
              f"{r['held_survival']:.0%} "
              f"(pose spread {r['held_pose_spread_m']:.3f} m), switched every 5 steps stay up "
              f"{r['switched_survival']:.0%} ({r['switched_pose_spread_m']:.3f} m)")
        from anyskill.llc.latent_checks import evaluate_untrained_hlc
        from anyskill.llc.prior import latent_prior

        prior = latent_prior(llc, lib, on_status=print)
        h = evaluate_untrained_hlc(llc, lib, prior, num=args.latent_envs, seed=args.seed)
        h["prior"] = {k: v for k, v in prior.record.items() if k != "curve"}
        summary["untrained_hlc"] = h
        print(f"an untrained high-level policy's latents from standing, {h['seconds']:g} s (its initial mean and std, "
              f"every {h['cadence']} steps): free actions stay up {h['free_survival']:.0%} (pose spread "
              f"{h['free_pose_spread_m']:.3f} m), anchored on the latent prior (sigma {h['anchor_scale']:g}) stay up "
              f"{h['anchored_survival']:.0%} ({h['anchored_pose_spread_m']:.3f} m); the clips' own pose spread "
              f"{h['library_pose_spread_m']:.3f} m")
        if args.anchor_scales:
            import pandas as pd

            keys = ("anchored_survival", "anchored_pose_spread_m", "anchored_previous_survival",
                    "anchored_previous_pose_spread_m")
            rows = []
            for scale in args.anchor_scales:
                r = evaluate_untrained_hlc(llc, lib, prior, num=args.latent_envs, seed=args.seed, anchor_scale=scale,
                                           modes=("anchored", "anchored_previous"))
                rows.append({"anchor_scale": scale, "characters": int(h["num"]), "free_survival": h["free_survival"],
                             "free_pose_spread_m": h["free_pose_spread_m"], **{k: r[k] for k in keys}})
            summary["untrained_hlc_by_anchor_scale"] = rows
            prov.finish().write_csv(pd.DataFrame(rows), out / "llc_untrained_hlc_anchor_scales.csv")
            for r in rows:
                print(f"  sigma {r['anchor_scale']:g}: anchored stay up {r['anchored_survival']:.0%} (pose spread "
                      f"{r['anchored_pose_spread_m']:.3f} m), anchored on the previous latent "
                      f"{r['anchored_previous_survival']:.0%} ({r['anchored_previous_pose_spread_m']:.3f} m)")
    if args.tracker:
        import pandas as pd

        from anyskill.llc.tracking.tracker import evaluate_tracker, load_tracker

        tracker, track = load_tracker(args.tracker)
        t = evaluate_tracker(tracker, lib, track, seed=args.seed)
        pd.DataFrame(t["per_clip"]).to_csv(out / "llc_tracker.csv", index=False)
        summary["tracker"] = {"finished": sum(r["finished"] for r in t["per_clip"]), "clips": len(t["per_clip"]),
                              "mean_local_error_m": t["local_error_m"]}
        print(f"tracker with the reference from each clip's first frame: {summary['tracker']['finished']}/"
              f"{len(t['per_clip'])} finished, mean root-relative body error {t['local_error_m']:.3f} m")
    (out / "llc_interface.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {out / 'llc_interface.json'}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anyskill", description="AnySkill companion: motion data, training, evaluation, "
                                                             "notebooks.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="run the numbered notebooks with papermill")
    r.add_argument("--scale", default="smoke", choices=SCALES)
    r.add_argument("--out", default="outputs/smoke", help="folder for executed notebooks, figures/ and results/ ('.' "
                                                          "= the repository's)")
    r.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 01 03")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", help="device for every notebook (default: cuda:0 for paper when available, else cpu)")
    r.add_argument("--executor", choices=["inprocess", "ray"], default="inprocess",
                   help="where the table notebooks (07-09) run their trainings: one after the other in the notebook "
                   "(default), or all at once as Ray tasks")
    r.add_argument("--ray-address", help="with --executor ray: the Ray cluster ('auto': the one this node belongs "
                   "to; ray://host:10001); default a local Ray on this machine")
    r.add_argument("--latent-action", choices=LATENT_ACTIONS, help="how the tables' high-level policies (07-09) act "
                   "on the latents: free (the paper's) or anchored on the latent prior (default: the notebooks')")
    r.add_argument("--anchor-scale", type=float, help="σ of anchored latent actions (default: the notebooks')")
    r.set_defaults(func=_reproduce)

    c = sub.add_parser("convert", help="convert a motion file (.npy poselib, .bvh, .npz) to the project's .npz format")
    c.add_argument("input")
    c.add_argument("output")
    c.set_defaults(func=_convert)

    b = sub.add_parser("build-data", help="(maintainers) rebuild anyskill/data from the shared sources")
    b.add_argument("--shared", default="../shared/data", help="folder holding motions/ and bvh/")
    b.set_defaults(func=_build_data)

    t = sub.add_parser("train-llc", help="train the low-level controller (tracking + distillation, or CALM)")
    t.add_argument("--scale", default="smoke", choices=SCALES)
    t.add_argument("--motions", help="motion manifest YAML (default: the bundled anyskill/data/motions.yaml)")
    t.add_argument("--epochs", type=int, help="last epoch (default: the scale's; counted across --resume)")
    t.add_argument("--envs", type=int, help="parallel humanoids (default: the scale's, "
                   + ", ".join(f"{s} {profile(s).llc.num_envs}" for s in SCALES) + ")")
    t.add_argument("--out", help="run folder (default runs/llc_<scale>)")
    t.add_argument("--resume", help="checkpoint (.pth) to continue from")
    t.add_argument("--device", help="cpu or cuda:0 (default: cuda:0 for paper when available, else cpu); the tracking "
                   "route on cuda uses MuJoCo Warp and its gpu sizes (8192 humanoids, 131 k samples per iteration)")
    t.add_argument("--backend", choices=["mujoco", "warp"], help="physics (default: warp on CUDA, else mujoco)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="stop cleanly after the epoch in which this many seconds of training passed (final checkpoint "
                   "written)")
    t.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="also write a checkpoint every this many seconds of training")
    t.add_argument("--no-progress", action="store_true", help="no tqdm bar (rl-games prints per-epoch stats instead)")
    t.add_argument("--route", choices=["tracking", "calm"],
                   help="tracking: a PPO tracker distilled into the latent interface (default at smoke/laptop); "
                   "calm: adversarial CALM (default at paper)")
    t.add_argument("--tracker-samples", type=int, help="tracking route: tracker samples (default: the scale's)")
    t.add_argument("--distill-samples", type=int, help="tracking route: distillation samples (default: the scale's)")
    t.add_argument("--switch-clips", nargs="+", metavar="CLIP",
                   help="tracking route: the clips whose windows the student's switched and random latents go to "
                        "(default: every clip); 'tracked': those the trained tracker finishes from their first frame "
                        "and from standing")
    t.add_argument("--distill-set", nargs="+", metavar="KEY=VALUE",
                   help="tracking route: student settings (DistillConfig fields), e.g. random_latent_prob=0.25 "
                        "random_hold_prob=0.4")
    t.add_argument("--threads", type=int, help="tracking route: MuJoCo stepping threads (default: the scale's)")
    t.add_argument("--tracker", choices=["ppo", "model_based"], default="ppo",
                   help="tracking route: the tracker's training, PPO (default) or through a learnt world model (an "
                   "option: docs/model_based_tracker.md)")
    t.set_defaults(func=_train_llc)

    e = sub.add_parser("eval-llc", help="per-clip imitation metrics of an LLC checkpoint, beside an untrained baseline")
    e.add_argument("checkpoint", help="CALM checkpoint (.pth), or 'untrained' for a random-init laptop-size controller")
    e.add_argument("--motions", help="motion manifest YAML (default: the bundled one)")
    e.add_argument("--out", default="results/llc_eval", help="folder for llc_eval.csv and llc_eval.png")
    e.add_argument("--seconds", type=float, default=5.0, help="longest rollout per clip, s")
    e.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also evaluate an untrained controller of the same size (default: on)")
    e.add_argument("--skills", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the held-out skill evaluation: every clip's latent from standing (default: on)")
    e.add_argument("--skill-seconds", type=float, default=10.0, help="rollout per latent in the skill evaluation, s")
    e.add_argument("--idle-seconds", type=float, default=60.0, help="how long the idle latent must keep it standing, s")
    e.add_argument("--sliding", action=argparse.BooleanOptionalAction, default=True,
                   help="also replay every clip with latents re-encoded every 5 steps from its first frame")
    e.add_argument("--random-latents", action=argparse.BooleanOptionalAction, default=True,
                   help="also hold / switch random unit latents from standing for 10 s, and send the latents of an "
                        "untrained high-level policy through the free and the anchored latent action (the controller's "
                        "latent prior, fitted once and cached in $ANYSKILL_CACHE/prior)")
    e.add_argument("--anchor-scales", type=float, nargs="+", metavar="SIGMA",
                   help="with --random-latents: also the untrained policy through anchored actions of each sigma (and "
                        "anchored on the previous latent), into llc_untrained_hlc_anchor_scales.csv")
    e.add_argument("--latent-envs", type=int, default=LATENT_CHECK_ENVS, metavar="N",
                   help=f"with --random-latents: characters per mode (default {LATENT_CHECK_ENVS}: a stay-up "
                        "fraction's standard error at most 0.5/sqrt(N))")
    e.add_argument("--tracker", help="a tracker checkpoint (tracking route) to evaluate with the reference")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=_eval_llc)

    ft = sub.add_parser("finetune-llc", help="RL fine-tune of a distilled controller (tracking route) on the random "
                        "and switching latents a high-level policy sends: PPO on survival, kept near the distilled "
                        "policy (resumes what --out holds)")
    ft.add_argument("checkpoint", help="the distilled controller (llc.pth of the tracking route)")
    ft.add_argument("--out", required=True, help="run folder: llc.pth (a controller) and latent_finetune_curve.csv")
    ft.add_argument("--samples", type=int, help="total samples, counted across resumes (default: the config's)")
    ft.add_argument("--set", nargs="+", metavar="KEY=VALUE",
                    help="LatentFinetuneConfig fields, e.g. action_std=0.02 anchor_coef=0.2 clip_start_prob=0.1")
    ft.add_argument("--time-budget", type=float, metavar="SECONDS",
                    help="stop cleanly after the iteration in which this many seconds passed (checkpoint written)")
    ft.add_argument("--motions", help="motion manifest YAML (default: the bundled one)")
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--log-every", type=int, default=0, metavar="ITERS", help="print a curve row every ITERS")
    ft.add_argument("--no-progress", action="store_true")
    ft.set_defaults(func=_finetune_llc)

    lr = sub.add_parser("latent-robustness", help="stay-up rates of random latents and of an untrained high-level "
                        "policy's latents (free and anchored) on each controller, over several seeds")
    lr.add_argument("--controller", nargs="+", required=True, metavar="LABEL=CHECKPOINT",
                    help="controllers to measure; rows of other labels already in --out are kept")
    lr.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    lr.add_argument("--envs", type=int, default=LATENT_CHECK_ENVS, help="characters per mode and seed")
    lr.add_argument("--anchor-scale", type=float, default=None,
                    help="sigma of the anchored latent action (default: the config's ANCHOR_SCALE)")
    lr.add_argument("--seconds", type=float, default=10.0, help="rollout from standing, s")
    lr.add_argument("--motions", help="motion manifest YAML (default: the bundled one)")
    lr.add_argument("--out", default="results/llc_latent_robustness.csv")
    lr.set_defaults(func=_latent_robustness)

    from anyskill.domain.cli import add_domain_commands
    from anyskill.eval.table_runs import add_table_task_command
    from anyskill.gpu.check import add_gpu_check_command
    from anyskill.gpu.ingest import add_gpu_ingest_command
    from anyskill.hlc.calibrate_cli import add_calibrate_command
    from anyskill.hlc.cli import add_hlc_commands
    from anyskill.hlc.et_study import add_et_study_command
    from anyskill.hlc.pose_comparison import add_compare_command
    from anyskill.reproduce import add_notebook_times_command
    from anyskill.viz.anchor_study import add_anchor_study_command
    from anyskill.viz.gpu_training import add_record_gpu_command
    from anyskill.viz.ship_llc import add_ship_command

    add_ship_command(sub)
    add_anchor_study_command(sub)
    add_record_gpu_command(sub)
    add_domain_commands(sub)
    add_hlc_commands(sub)
    add_compare_command(sub)
    add_et_study_command(sub)
    add_calibrate_command(sub)
    add_notebook_times_command(sub)
    add_table_task_command(sub)
    add_gpu_check_command(sub)
    add_gpu_ingest_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a sub-command. Errors about the user's input (bad files, missing weights or system libraries) print one
    line and exit with status 2; set ``ANYSKILL_DEBUG=1`` for the full traceback."""
    import os

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (OSError, ValueError, RuntimeError) as e:
        if os.environ.get("ANYSKILL_DEBUG") or not _is_user_error(e):
            raise
        print(f"anyskill {args.command}: error: {e}", file=sys.stderr)
        return 2


def _is_user_error(e: BaseException) -> bool:
    """Errors that describe bad input or a missing resource, with a message that says what to do."""
    from anyskill.motion.clip import MotionFormatError
    from anyskill.reward.clip_model import ClipWeightsUnavailable

    user: tuple[type[BaseException], ...] = (MotionFormatError, ClipWeightsUnavailable, FileNotFoundError)
    try:
        from anyskill.motion.library import ManifestError
        from anyskill.sim.render import RenderingUnavailable

        user += (ManifestError, RenderingUnavailable)
    except ImportError:  # pragma: no cover - optional rendering stack
        pass
    return isinstance(e, user)


if __name__ == "__main__":
    sys.exit(main())
