"""``anyskill record-gpu-llc RUN... --eval DIR``: record one-shot GPU trainings of the tracking route
(:mod:`anyskill.llc.tracking.oneshot`, ``scripts/gpu_train_llc.sh``) as committed results.

RUN are the folders a GPU machine returned, in training order (a ``--resume`` chain); the last one holds the final
controller (``llc.pth``, or its ``.partNN`` pieces) and tracker. DIR is ``anyskill eval-llc`` of that controller
(``--tracker`` and the interface checks; run on any CPU). Writes, under ``--name`` (default ``llc_gpu``):

* ``anyskill/checkpoints/NAME.pth`` and ``NAME_tracker.pth`` (no optimiser state; ``--resume`` a later loan from
  them), the curves beside them, and the model card ``NAME.md``;
* ``results/NAME_{skills,sliding,tracker}.csv`` and ``results/NAME_training.json``: every run's throughput beside the
  env alone on the same worlds, cold start, samples and wall time, the final evaluation, and the verdict against
  the shipped default (:func:`beats`): the default changes only when the new controller identifies more held skills
  and keeps at least as many upright (5 points of slack) and its idle latent stands;
* ``figures/NAME_route_curves.png``: both stages over samples, the whole chain;
* ``results/bench_llc.json`` ``gpu_training[NAME]``: each run's throughput beside the env alone, next to the CPU rows.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from anyskill.provenance import REPO_ROOT

SURVIVAL_SLACK = 0.05


def beats(new: dict[str, Any], shipped: dict[str, Any]) -> tuple[bool, str]:
    """Whether held-skill summary ``new`` beats ``shipped`` (``top1``, ``survival``, ``idle_60s``); (verdict, why)."""
    if new["top1"] <= shipped["top1"]:
        return False, (f"identifies {new['top1']:.0%} of the held skills, not more than the shipped "
                       f"{shipped['top1']:.0%}")
    if new["survival"] < shipped["survival"] - SURVIVAL_SLACK:
        return False, (f"identifies more held skills ({new['top1']:.0%} vs {shipped['top1']:.0%}) but keeps "
                       f"{new['survival']:.0%} upright for 10 s, more than {SURVIVAL_SLACK:.0%} below the shipped "
                       f"{shipped['survival']:.0%}")
    if shipped.get("idle_60s") and not new.get("idle_60s"):
        return False, "its idle latent falls within 60 s (the shipped one's stands)"
    return True, f"identifies {new['top1']:.0%} of the held skills (shipped {shipped['top1']:.0%})"


def _metrics(eval_dir: Path) -> dict[str, Any]:
    skills = json.loads((eval_dir / "llc_skills.json").read_text())["summary"]
    iface = json.loads((eval_dir / "llc_interface.json").read_text())
    return {"top1": skills["top1_accuracy"], "survival": skills["survival_rate"], "idle_60s": skills["idle_survived"],
            "own_distance_m": skills["mean_own_distance_m"], "sliding_finished": iface["sliding"]["finished"],
            "sliding_error_m": iface["sliding"]["mean_local_error_m"],
            "random_held": iface["random_latents"]["held_survival"],
            "random_switched": iface["random_latents"]["switched_survival"],
            "tracker_finished": iface["tracker"]["finished"], "tracker_error_m": iface["tracker"]["mean_local_error_m"]}


def record_gpu_training(runs: list[Path], eval_dir: Path, name: str = "llc_gpu", root: Path = REPO_ROOT,
                        ship: bool = True) -> dict[str, Any]:
    """Record ``runs`` (module docstring); returns the ``results/NAME_training.json`` dict."""
    import pandas as pd
    import torch

    from anyskill.llc.card import strip
    from anyskill.llc.tracking.oneshot import join_file
    from anyskill.provenance import Provenance
    from anyskill.viz.llc_eval import plot_route_curves
    from anyskill.viz.ship_llc import STUDENT_KEYS, TRACKER_KEYS

    root, last = Path(root), Path(runs[-1])
    ck, results, figures = root / "anyskill" / "checkpoints", root / "results", root / "figures"
    for d in (ck, results, figures):
        d.mkdir(parents=True, exist_ok=True)
    prov = Provenance("anyskill record-gpu-llc", config={"runs": [str(r) for r in runs], "eval": str(eval_dir),
                                                          "name": name}, device="cuda:0 (training), cpu (evaluation)")
    joined = last / "llc.pth"
    if not joined.is_file() and not join_file(last, "llc.pth", joined):
        raise FileNotFoundError(f"{last} holds no llc.pth (or llc.pth.partNN pieces)")
    student = torch.load(joined, map_location="cpu", weights_only=False)
    tracker = torch.load(last / "tracker.pth", map_location="cpu", weights_only=False)
    torch.save(strip(student, STUDENT_KEYS), ck / f"{name}.pth")
    torch.save(strip(tracker, TRACKER_KEYS), ck / f"{name}_tracker.pth")
    tc, dc = pd.DataFrame(tracker["curve"]), pd.DataFrame(student.get("curve", []))
    tc.to_csv(ck / f"{name}_tracker_curve.csv", index=False)
    dc.to_csv(ck / f"{name}_distill_curve.csv", index=False)
    for stem in ("skills", "sliding", "tracker"):
        src = eval_dir / f"llc_{stem}.csv"
        if src.is_file():
            shutil.copyfile(src, results / f"{name}_{stem}.csv")
    new = _metrics(eval_dir)
    shipped_file = results / "llc_laptop_interface.json"
    shipped = json.loads(shipped_file.read_text()) if shipped_file.is_file() else None
    ref = None
    if shipped:
        s = shipped["interface"]["shipped"]
        ref = {**{k: s[k] for k in ("top1", "survival", "idle_60s", "own_distance_m", "sliding_finished",
                                    "sliding_error_m", "random_held", "random_switched")},
               "tracker_finished": shipped["tracker"]["trained"]["finished"],
               "tracker_error_m": shipped["tracker"]["trained"]["error_m"]}
    verdict, why = beats(new, ref) if ref else (False, "no shipped controller to compare with")
    per_run = []
    for r in runs:
        s = json.loads((Path(r) / "summary.json").read_text())
        per_run.append({"folder": str(r), "budget_s": s["budget_s"], "resumed": bool(s.get("resumed_from")),
                        "machine": s["machine"], "env_alone": s["env_alone"], "tracker": s["tracker"],
                        "distill": s["distill"], "cold_start_to_first_iteration_s":
                            s["cold_start_to_first_iteration_s"], "train_wall_s": s["train_wall_s"],
                        "python_start_to_first_iteration_s": s.get("python_start_to_first_iteration_s"),
                        "wall_s": s["wall_s"], "commit": s["provenance"]["commit"]})
    out = {"name": name, "runs": per_run, "tracker_samples": int(tracker["samples"]),
           "student_samples": int(student["samples"]),
           "train_wall_s": sum(r["train_wall_s"] for r in per_run), "final": new, "shipped_laptop": ref,
           "beats_shipped": verdict, "reason": why, "shipped_as_default": bool(ship and verdict)}
    prov.finish().write_json(out, results / f"{name}_training.json")
    _bench_rows(results / "bench_llc.json", name, per_run)
    fig = plot_route_curves(tc, dc, title=f"{name}.pth: tracking route on one H200 over samples "
                            f"({len(runs)} loan{'s' if len(runs) > 1 else ''})")
    prov.finish().save_figure(fig, figures / f"{name}_route_curves.png")
    (ck / f"{name}.md").write_text(card(name, out))
    if ship and verdict:
        shutil.copyfile(ck / f"{name}.pth", ck / "llc_paper.pth")
        shutil.copyfile(ck / f"{name}.md", ck / "llc_paper.md")
    return out


def _bench_rows(bench: Path, name: str, runs: list[dict[str, Any]]) -> None:
    """The runs' throughput beside the env alone (same process, same worlds) under ``gpu_training[name]`` of
    ``results/bench_llc.json``, where the CPU rows live."""
    if not bench.is_file():
        return
    data = json.loads(bench.read_text())
    data.setdefault("gpu_training", {})[name] = [
        {"gpu": r["machine"].get("gpu"), "commit": r["commit"], "worlds": r["env_alone"]["worlds"],
         "tracker_samples_per_s": round(r["tracker"]["samples_per_s"], 1),
         "env_alone_control_steps_per_s": round(r["env_alone"]["env_control_steps_per_s"], 1),
         "tracker_over_env_alone": round(r["tracker"]["over_env_alone"], 3),
         "env_over_raw_backend": round(r["env_alone"]["env_over_backend"], 3),
         "distill_samples_per_s": round(r["distill"]["samples_per_s"], 1)} for r in runs]
    bench.write_text(json.dumps(data, indent=1) + "\n")


def card(name: str, rec: dict[str, Any]) -> str:
    """The model card of a GPU-trained tracking-route controller, beside the shipped `laptop` one."""
    n, s = rec["final"], rec["shipped_laptop"] or {}
    rows = [("held latent from standing: skills identified (top-1, chance 1/18)", "top1", True),
            ("held latent: stay up 10 s", "survival", True), ("idle latent stands 60 s", "idle_60s", False),
            ("held latent: mean own-clip pose distance (m)", "own_distance_m", False),
            ("sliding latents from each clip's first frame: finished (of 18)", "sliding_finished", False),
            ("sliding latents: mean root-relative body error (m)", "sliding_error_m", False),
            ("random unit latents held 10 s: stay up", "random_held", True),
            ("random unit latents switched every 5 steps: stay up", "random_switched", True),
            ("tracker with the reference, first frame: finished (of 18)", "tracker_finished", False),
            ("tracker: mean root-relative body error (m)", "tracker_error_m", False)]

    def f(v: Any, pct: bool) -> str:
        if isinstance(v, bool) or v is None:
            return {True: "yes", False: "no", None: "—"}[v]
        return f"{v:.0%}" if pct else (f"{v:.3f}" if isinstance(v, float) else str(v))

    lines = [f"# Model card: `{name}.pth` — low-level controller, tracking route, trained on one GPU", "",
             "The tracking route (`anyskill.llc.tracking`: a residual PD tracker by PPO, then DAgger distillation into "
             "the encoder E and π_L(a | s, z, τ)) run end to end on MuJoCo Warp on one NVIDIA H200 by "
             "`scripts/gpu_train_llc.sh` (`anyskill.llc.tracking.oneshot`, `gpu` sizes: 8192 humanoids, 131 k "
             "samples per iteration), over "
             f"{len(rec['runs'])} loan(s) chained by `--resume`: **{rec['tracker_samples']:,} tracker samples and "
             f"{rec['student_samples']:,} student samples in {rec['train_wall_s'] / 60:.1f} min of training**. The "
             "student's latents follow four regimes per episode (held, sliding every 5 steps, switches to random "
             "windows, random unit latents labelled with the nearest window), so random and switching latents "
             "stay motions. Load it with `anyskill.llc.load_llc(\"anyskill/checkpoints/" + name + ".pth\")`.", "",
             "## Runs", "", "| loan | budget (s) | tracker samples/s | ÷ env alone | env alone (control steps/s, "
             "8192 worlds) | env ÷ raw Warp | student samples/s | cold start → first iteration (s) | commit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rec["runs"], 1):
        e = r["env_alone"]
        lines.append(f"| {i}{' (resumed)' if r['resumed'] else ''} | {r['budget_s']:.0f} | "
                     f"{r['tracker']['samples_per_s']:,.0f} | {r['tracker']['over_env_alone']:.2f} | "
                     f"{e['env_control_steps_per_s']:,.0f} | {e['env_over_backend']:.2f} | "
                     f"{r['distill']['samples_per_s']:,.0f} | {_cold(r)} | "
                     f"`{r['commit']}` |")
    lines += ["", "## Metrics (bundled 18 clips, deterministic; `anyskill eval-llc` on the CPU)", "",
              "| metric | this controller | shipped default `llc_laptop.pth` (2 CPU cores, 54 min) |", "|---|---|---|"]
    for label, key, pct in rows:
        lines.append(f"| {label} | {f(n.get(key), pct)} | {f(s.get(key), pct)} |")
    lines += ["", f"**Default?** {'yes' if rec['shipped_as_default'] else 'no'}: {rec['reason']}.", "",
              f"Per clip: `results/{name}_skills.csv`, `results/{name}_sliding.csv`, `results/{name}_tracker.csv`; "
              f"all numbers: `results/{name}_training.json`; curves: `{name}_tracker_curve.csv`, "
              f"`{name}_distill_curve.csv`, `figures/{name}_route_curves.png`."]
    return "\n".join(lines) + "\n"


def _cold(run: dict[str, Any]) -> str:
    c, py = run["cold_start_to_first_iteration_s"], run.get("python_start_to_first_iteration_s")
    if c is not None:
        return f"{c:.0f}" + (f" ({py:.0f} from Python's start)" if py is not None else "")
    return f"— ({py:.0f} from Python's start)" if py is not None else "—"


def _record(args: argparse.Namespace) -> int:
    out = record_gpu_training([Path(r) for r in args.runs], Path(args.eval), args.name, Path(args.root),
                              ship=not args.no_ship)
    print(json.dumps({k: out[k] for k in ("tracker_samples", "student_samples", "final", "beats_shipped", "reason")},
                     indent=1, default=str))
    return 0


def add_record_gpu_command(sub) -> None:
    """Register ``record-gpu-llc`` on the ``anyskill`` parser's sub-parsers."""
    s = sub.add_parser("record-gpu-llc", help="record one-shot GPU trainings of the tracking route (checkpoints, "
                       "card, results, figure; ships it as the default only if it beats the shipped one)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("runs", nargs="+", help="the folders the GPU machine returned, in training order")
    s.add_argument("--eval", required=True, help="`anyskill eval-llc` output folder of the last run's controller")
    s.add_argument("--name", default="llc_gpu", help="file stem under anyskill/checkpoints, results, figures")
    s.add_argument("--root", default=str(REPO_ROOT), help="the repository to write into (default: this one)")
    s.add_argument("--no-ship", action="store_true", help="never replace the shipped default")
    s.set_defaults(func=_record)
