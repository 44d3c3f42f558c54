"""Ship a `laptop` tracking-route run as the default controller: evaluate it, write its model card.

    .venv/bin/python scripts/finish_tracking_llc.py runs/track_L1 [--calm anyskill/checkpoints/llc_calm_laptop.pth]

1. copies ``RUN/llc.pth`` (the distilled student) to ``anyskill/checkpoints/llc_laptop.pth`` and ``RUN/tracker.pth``
   (the teacher) to ``llc_laptop_tracker.pth``, without optimiser states, and the curves beside them;
2. evaluates, all deterministic, on the bundled 18 clips: held latents from standing (10 s; idle 60 s), sliding
   latents from each clip's first frame, random unit latents (held / switched every 5 steps, 10 s) — for the
   shipped student, an untrained student of the same sizes and the CALM controller it replaces; the tracker with
   the reference from each clip's first frame beside the zero-residual replay (the untrained tracker);
3. writes results/llc_laptop_{skills.csv, skills.json, skills_distances.csv, sliding.csv, tracker.csv,
   interface.json}, figures/llc_laptop_{skills, route_curves}.png and the model card ``llc_laptop.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
GOALS = {"top1": 0.6, "survival": 0.9, "sliding_finished": 15, "sliding_error_m": 0.08, "tracker_finished": 16,
         "tracker_error_m": 0.05, "random_held": 0.9, "random_switched": 0.9}


def strip(state: dict, keep: tuple[str, ...]) -> dict:
    return {k: v for k, v in state.items() if k in keep}


def interface_metrics(llc, lib, seed: int) -> tuple[dict, object, pd.DataFrame]:
    from anyskill.llc.latent_checks import evaluate_random_latents, evaluate_sliding
    from anyskill.llc.skills import evaluate_skills

    skills = evaluate_skills(llc, lib, seconds=10.0, idle_seconds=60.0, seed=seed)
    sliding = evaluate_sliding(llc, lib, seed=seed)
    rnd = evaluate_random_latents(llc, lib, seed=seed)
    s = skills.summary
    return ({"top1": s["top1_accuracy"], "survival": s["survival_rate"], "idle_60s": bool(s["idle_survived"]),
             "own_distance_m": s["mean_own_distance_m"], "sliding_finished": int(sliding["finished"].sum()),
             "sliding_error_m": float(sliding["local_error_m"].mean()), "random_held": rnd["held_survival"],
             "random_switched": rnd["switched_survival"],
             "identified": ",".join(skills.per_clip.loc[skills.per_clip["identified"], "clip"])}, skills, sliding)


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 1.0 or v != int(v) else f"{v:.0f}"
    return str(v)


def model_card(info: dict, m: dict, tracker: dict, curves: dict, calm_path: str) -> str:
    rows = [("held latent from standing: skills identified (top-1, chance 1/18)", "top1", "≥ 60 %", "pct"),
            ("held latent: stay up 10 s", "survival", "≥ 90 %", "pct"),
            ("idle latent stands 60 s", "idle_60s", "yes", ""),
            ("held latent: mean own-clip pose distance (m)", "own_distance_m", "—", ""),
            ("sliding latents from each clip's first frame: finished without a fall (of 18)", "sliding_finished",
             "≥ 15", ""),
            ("sliding latents: mean root-relative body error (m)", "sliding_error_m", "≤ 0.08", ""),
            ("random unit latents held 10 s from standing: stay up", "random_held", "≥ 90 %", "pct"),
            ("random unit latents switched every 5 steps: stay up", "random_switched", "≥ 90 %", "pct")]

    def cell(d: dict, key: str, kind: str) -> str:
        v = d[key]
        return f"{v:.0%}" if kind == "pct" else _fmt(v)

    table = ["| metric | goal | shipped (tracking route) | untrained student | CALM `laptop` (previous default) |",
             "|---|---|---|---|---|"]
    for label, key, goal, kind in rows:
        table.append(f"| {label} | {goal} | {cell(m['shipped'], key, kind)} | {cell(m['untrained'], key, kind)} | "
                     f"{cell(m['calm'], key, kind)} |")
    t, z = tracker["trained"], tracker["replay"]
    table.append(f"| tracker with the reference, first frame: finished (of 18) | ≥ 16 | {t['finished']} | "
                 f"{z['finished']} (zero residual = PD replay) | — |")
    table.append(f"| tracker: mean root-relative body error (m) | ≤ 0.05 | {t['error_m']:.3f} | {z['error_m']:.3f} | "
                 "— |")
    tr, di = info["tracker"], info["distill"]
    lines = [
        "# Model card: `llc_laptop.pth` — low-level controller, tracking route, `laptop` scale",
        "",
        "The default low-level controller at the CPU scales: the interface of paper §3.1 (motion encoder E: a 2-s "
        "window of AMP frames → unit latent z ∈ S^63; policy π_L(a | s, z)) reached by **tracking first, then "
        "distillation** (`anyskill train-llc --route tracking`, `anyskill.llc.tracking.route`) instead of CALM's "
        "adversarial imitation, which needs 10^8+ samples (a GPU budget). Load it with "
        "`anyskill.llc.load_llc(\"anyskill/checkpoints/llc_laptop.pth\")` → a `StudentController`; the high-level "
        "policy, `eval-llc` and the notebooks use it unchanged. The previous CALM controller is kept as "
        f"`{calm_path}` (its card beside it).",
        "",
        "## How it was made",
        f"* Data: the 18 bundled clips (`anyskill/data/motions.yaml`), {sum(info['durations']):.1f} s in all.",
        f"* Stage 1, tracker π_T(a | s, next {info['tracking']['future_frames']} reference frames): residual PD "
        f"targets around the reference joint angles (scale {info['tracking']['residual_scale']} of the action range), "
        "DeepMimic-style kernel reward, reference-state init and standing starts blending into the clip "
        f"({info['tracking']['standing_start_prob']:.0%} of episodes), looping references, early termination at "
        f"{info['tracking']['termination_error_m']} m mean body error, failure-weighted clips; PPO "
        f"({info['ppo']['actor_units']} actor, fixed std {info['ppo']['action_std']}→"
        f"{info['ppo']['action_std_final']}, "
        f"KL-adaptive lr), {info['tracking']['num_envs']} envs: **{tr['samples']:,} samples, {tr['wall_s'] / 60:.0f} "
        "min**.",
        f"* Stage 2, DAgger distillation into E and π_L(a | s, z, τ) (τ: control steps since the latent changed, "
        f"counted by the controller; saturates at {info['distill']['timing_horizon']}): half the episodes with "
        "latents re-encoded every 5 steps from the window that starts now (sliding), half with one latent held "
        "while the reference plays on and loops; 20 % of latents noised; CALM's align + uniform encoder "
        f"regulariser: **{di['samples']:,} samples, {di['wall_s'] / 60:.0f} min**.",
        f"* Machine: {info['machine']}; seed {info['seed']}; commit {info['commit']}.",
        "",
        "## Metrics (bundled 18 clips, deterministic actions; `anyskill eval-llc anyskill/checkpoints/llc_laptop.pth "
        "--tracker anyskill/checkpoints/llc_laptop_tracker.pth`)",
        "",
        *table,
        "",
        f"Skills identified (shipped): {m['shipped']['identified'] or 'none'}. CALM: {m['calm']['identified']}.",
        "",
        "Per clip: `results/llc_laptop_skills.csv` (held), `results/llc_laptop_sliding.csv`, "
        "`results/llc_laptop_tracker.csv`; all numbers: `results/llc_laptop_interface.json`.",
        "",
        "## Over training",
        "Tracker (deterministic, every clip from its first frame / from standing) and student (held skills, sliding "
        "replay) against samples: `llc_laptop_tracker_curve.csv`, `llc_laptop_distill_curve.csv`, "
        "`figures/llc_laptop_route_curves.png`.",
        "",
        curves["tracker_table"],
        "",
        curves["distill_table"],
        "",
        "## What it cannot do (measured)",
        *info["limits"],
        *hlc_section(ROOT / "results" / "llc_hlc_pose_goals.csv"),
    ]
    return "\n".join(lines) + "\n"


def hlc_section(path: Path) -> list[str]:
    """The high-level comparison of ``scripts/hlc_pose_comparison.py`` (pose goals of 5 clips, both controllers)."""
    if not path.is_file():
        return []
    df = pd.read_csv(path, comment="#")
    mean = df.groupby("controller")[["pose_error_untrained_m", "pose_error_trained_m"]].mean().reset_index()
    return ["", "## One level up: high-level policies on pose goals",
            "π_H trained on each controller toward the middle frame of 5 clips (`scripts/hlc_pose_comparison.py`: "
            "`laptop` profile, 60 epochs × 32 envs, seed 0); mean pose error (m) of deterministic 2-s rollouts from "
            f"standing before and after training (`{path.relative_to(ROOT)}`):", "",
            markdown_table(df.drop(columns=["train_s"])), "", "Mean over the goals:", "", markdown_table(mean)]


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table of ``df`` (floats to 3 decimals), without pandas' optional tabulate dependency."""
    cells = [[_fmt(v.item() if hasattr(v, "item") else v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def curve_tables(run: Path) -> dict:
    out = {}
    tc = pd.read_csv(run / "tracker_curve.csv")
    cols = [c for c in ("samples", "eval_finished", "eval_local_error_m", "eval_stand_finished",
                        "eval_stand_local_error_m") if c in tc]
    t = tc.dropna(subset=[c for c in cols if c != "samples"])[cols] if len(cols) > 1 else tc[["samples"]].tail(0)
    out["tracker_table"] = "Tracker:\n\n" + markdown_table(t)
    dc = pd.read_csv(run / "distill_curve.csv")
    cols = [c for c in ("samples", "bc_loss", "eval_top1", "eval_survival", "eval_sliding_finished",
                        "eval_sliding_error_m") if c in dc]
    d = dc.dropna(subset=[c for c in cols if c.startswith("eval")])[cols] if any(
        c.startswith("eval") for c in cols) else dc[cols].iloc[::20]
    out["distill_table"] = "Student:\n\n" + markdown_table(d)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--calm", default="anyskill/checkpoints/llc_calm_laptop.pth")
    ap.add_argument("--root", type=Path, default=ROOT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limits", type=Path, help="a text file of measured limitations for the card (one per line)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(args.root))
    from anyskill.data import default_library
    from anyskill.llc.controller import load_llc
    from anyskill.llc.evaluate import untrained_llc
    from anyskill.llc.tracking.tracker import Tracker, evaluate_tracker, load_tracker
    from anyskill.provenance import Provenance, git_commit, machine
    from anyskill.viz.llc_eval import plot_route_curves, plot_sliding, write_skill_eval

    root, run = args.root, args.run
    ck = root / "anyskill" / "checkpoints"
    student_state = torch.load(run / "llc.pth", map_location="cpu", weights_only=False)
    tracker_state = torch.load(run / "tracker.pth", map_location="cpu", weights_only=False)
    shipped = ck / "llc_laptop.pth"
    torch.save(strip(student_state, ("student_config", "student", "route", "samples", "iteration", "tracking",
                                     "distill", "seed")), shipped)
    torch.save(strip(tracker_state, ("tracker", "tracker_config", "tracking", "ppo", "samples", "iteration",
                                     "seed")), ck / "llc_laptop_tracker.pth")
    for name in ("tracker_curve.csv", "distill_curve.csv"):
        (ck / f"llc_laptop_{name}").write_text((run / name).read_text())
    lib = default_library()
    prov = Provenance("scripts/finish_tracking_llc.py", config={"run": str(run), "calm": args.calm}, seed=args.seed)
    llc = load_llc(shipped)
    untrained = untrained_llc(llc, args.seed)
    metrics, files = {}, {}
    for label, ctrl in (("shipped", llc), ("untrained", untrained), ("calm", load_llc(root / args.calm))):
        metrics[label], skills, sliding = interface_metrics(ctrl, lib, args.seed)
        print(label, json.dumps(metrics[label]), flush=True)
        if label == "shipped":
            files["skills"] = write_skill_eval(skills, root / "results", prov.finish(), stem="llc_laptop_skills",
                                               title="held-out skills: llc_laptop.pth (tracking route)",
                                               figures_dir=root / "figures")
            prov.write_csv(sliding, root / "results" / "llc_laptop_sliding.csv")
    teacher, track = load_tracker(ck / "llc_laptop_tracker.pth")
    t_eval = evaluate_tracker(teacher, lib, track, seed=args.seed)
    replay = Tracker(teacher.obs_dim, teacher.act_dim, teacher.actor_units, teacher.critic_units)
    for p in replay.actor[-1].parameters():
        torch.nn.init.zeros_(p)
    z_eval = evaluate_tracker(replay.eval(), lib, track, seed=args.seed)
    prov.write_csv(pd.DataFrame(t_eval["per_clip"]), root / "results" / "llc_laptop_tracker.csv")
    tracker = {k: {"finished": sum(r["finished"] for r in e["per_clip"]), "error_m": e["local_error_m"]}
               for k, e in (("trained", t_eval), ("replay", z_eval))}
    prov.write_json({"interface": metrics, "tracker": tracker, "goals": GOALS}, root / "results" /
                    "llc_laptop_interface.json")
    fig = plot_route_curves(pd.read_csv(run / "tracker_curve.csv"), pd.read_csv(run / "distill_curve.csv"),
                            title="llc_laptop.pth: tracking route over samples")
    prov.finish().save_figure(fig, root / "figures" / "llc_laptop_route_curves.png")
    fig = plot_sliding(pd.read_csv(root / "results" / "llc_laptop_sliding.csv", comment="#"))
    prov.finish().save_figure(fig, root / "figures" / "llc_laptop_sliding.png")
    info = json.loads((run / "train_info.json").read_text()) if (run / "train_info.json").is_file() else {}
    info.update({"tracking": student_state["tracking"], "ppo": tracker_state["ppo"],
                 "distill": {**student_state["distill"], "samples": int(student_state["samples"]),
                             "wall_s": info.get("distill_wall_s", float("nan"))},
                 "tracker": {"samples": int(tracker_state["samples"]), "wall_s": info.get("tracker_wall_s",
                                                                                        float("nan"))},
                 "durations": lib.durations.tolist(), "seed": student_state.get("seed", 0),
                 "commit": git_commit(root), "machine": machine() + " (shared with other work)",
                 "limits": (args.limits.read_text().splitlines() if args.limits else [])})
    card = model_card(info, metrics, tracker, curve_tables(run), args.calm)
    (ck / "llc_laptop.md").write_text(card)
    print(card)
    return 0


if __name__ == "__main__":
    sys.exit(main())
