"""``anyskill ship-llc RUN``: ship a tracking-route run (``anyskill train-llc --route tracking``) as the default
controller, with its evaluation files, figures and model card.

1. copies ``RUN/llc.pth`` (the distilled student) to ``anyskill/checkpoints/llc_laptop.pth`` and ``RUN/tracker.pth``
   (the teacher) to ``llc_laptop_tracker.pth``, without optimiser states, and the curves beside them; with
   ``--finetune FT`` the student is ``FT/llc.pth`` instead, the RL fine-tune of RUN's student on random and switching
   latents (``anyskill finetune-llc``), and its curve ships as ``llc_laptop_latent_finetune_curve.csv`` with a
   figure;
2. evaluates, all deterministic, on the motions (default: the bundled 18 clips): held latents from standing (10 s;
   idle 60 s), sliding latents from each clip's first frame, random unit latents (held / switched every 5 steps,
   10 s), the latents of an untrained high-level policy through the free action — for the shipped student, an
   untrained student of the same sizes and the CALM controller it replaces; the tracker with the reference from each
   clip's first frame beside the zero-residual replay (the untrained tracker);
3. writes results/llc_laptop_{skills.csv, skills.json, skills_distances.csv, sliding.csv, tracker.csv,
   interface.json}, figures/llc_laptop_{skills, route_curves, sliding[, latent_finetune]}.png and the model card
   ``llc_laptop.md`` (:func:`anyskill.llc.card.model_card`), which embeds ``results/llc_hlc_pose_goals.csv`` of
   ``anyskill compare-llc-pose`` when it is there.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from anyskill.provenance import REPO_ROOT

STUDENT_KEYS = ("student_config", "student", "route", "samples", "iteration", "tracking", "distill", "seed",
                "latent_finetune", "finetuned_from", "finetune_phases")
TRACKER_KEYS = ("tracker", "tracker_config", "tracking", "ppo", "samples", "iteration", "seed")


CALM_LAPTOP = "anyskill/checkpoints/llc_calm_laptop.pth"


def ship_llc(run: str | Path, calm: str | Path = CALM_LAPTOP, root: str | Path = REPO_ROOT, seed: int = 0,
             limits: list[str] | None = None, motions: str | Path | None = None,
             skill_seconds: float = 10.0, idle_seconds: float = 60.0, random_seconds: float = 10.0,
             history: list[str] | None = None, finetune: str | Path | None = None) -> str:
    """Ship ``run`` into ``root`` (module docstring); ``calm``: the CALM controller compared (relative to ``root``
    unless absolute); ``limits``: measured limitations listed on the card; ``history``: lines on how the run was
    made beyond its settings (e.g. which controller it continues); ``finetune``: a ``finetune-llc`` folder whose
    controller ships instead of RUN's student (module docstring). The numbers of the default it replaces (read from
    ``results/llc_laptop_interface.json`` with their commit) stay beside the new ones on the card. Returns the card."""
    import pandas as pd
    import torch

    from anyskill.llc.card import GOALS, curve_tables, interface_metrics, model_card, strip
    from anyskill.llc.controller import load_llc
    from anyskill.llc.evaluate import untrained_llc
    from anyskill.llc.motions import load_motions
    from anyskill.llc.tracking.latent_finetune import curve_wall_s
    from anyskill.llc.tracking.tracker import Tracker, evaluate_tracker, load_tracker
    from anyskill.provenance import Provenance, git_commit, machine
    from anyskill.viz.llc_eval import plot_latent_finetune, plot_route_curves, plot_sliding, write_skill_eval

    torch.set_num_threads(1)
    root, run = Path(root), Path(run)
    ck, results = root / "anyskill" / "checkpoints", root / "results"
    for d in (ck, results, root / "figures"):
        d.mkdir(parents=True, exist_ok=True)
    distilled = torch.load(run / "llc.pth", map_location="cpu", weights_only=False)
    student_state = distilled
    if finetune is not None:
        finetune = Path(finetune)
        student_state = torch.load(finetune / "llc.pth", map_location="cpu", weights_only=False)
        if "latent_finetune" not in student_state:
            raise ValueError(f"{finetune / 'llc.pth'} is not a finetune-llc checkpoint")
    tracker_state = torch.load(run / "tracker.pth", map_location="cpu", weights_only=False)
    shipped = ck / "llc_laptop.pth"
    before = results / "llc_laptop_interface.json"  # the default being replaced: its recorded numbers, its commit
    previous = None
    if before.is_file():
        rec = json.loads(before.read_text())
        previous = {**rec["interface"]["shipped"], "commit": rec["provenance"]["commit"],
                    "checkpoint_commit": git_commit(root).removesuffix("+dirty")}  # HEAD still holds it
        same = (rec["provenance"]["config"].get("run") == str(run)
                and rec["provenance"]["config"].get("finetune") == (str(finetune) if finetune else None))
        if same:  # the same controller shipped again: keep its predecessor
            previous = rec.get("previous")
    torch.save(strip(student_state, STUDENT_KEYS), shipped)
    torch.save(strip(tracker_state, TRACKER_KEYS), ck / "llc_laptop_tracker.pth")
    for name in ("tracker_curve.csv", "distill_curve.csv"):
        (ck / f"llc_laptop_{name}").write_text((run / name).read_text())
    ft_curve = None
    if finetune is not None:
        ft_curve = pd.read_csv(finetune / "latent_finetune_curve.csv")
        (ck / "llc_laptop_latent_finetune_curve.csv").write_text((finetune / "latent_finetune_curve.csv").read_text())
    lib, _ = load_motions(motions)
    prov = Provenance("anyskill ship-llc", config={"run": str(run), "calm": str(calm),
                                                   **({"finetune": str(finetune)} if finetune else {})}, seed=seed)
    llc = load_llc(shipped)
    metrics = {}
    for label, ctrl in (("shipped", llc), ("untrained", untrained_llc(llc, seed)), ("calm", load_llc(root / calm))):
        metrics[label], skills, sliding = interface_metrics(ctrl, lib, seed, skill_seconds, idle_seconds,
                                                            random_seconds)
        print(label, json.dumps(metrics[label]), flush=True)
        if label == "shipped":
            write_skill_eval(skills, results, prov.finish(), stem="llc_laptop_skills",
                             title="held-out skills: llc_laptop.pth (tracking route)", figures_dir=root / "figures")
            prov.write_csv(sliding, results / "llc_laptop_sliding.csv")
    teacher, track = load_tracker(ck / "llc_laptop_tracker.pth")
    t_eval = evaluate_tracker(teacher, lib, track, seed=seed)
    replay = Tracker(teacher.obs_dim, teacher.act_dim, teacher.actor_units, teacher.critic_units)
    for p in replay.actor[-1].parameters():
        torch.nn.init.zeros_(p)
    z_eval = evaluate_tracker(replay.eval(), lib, track, seed=seed)
    prov.write_csv(pd.DataFrame(t_eval["per_clip"]), results / "llc_laptop_tracker.csv")
    tracker = {k: {"finished": sum(r["finished"] for r in e["per_clip"]), "error_m": e["local_error_m"]}
               for k, e in (("trained", t_eval), ("replay", z_eval))}
    prov.write_json({"interface": metrics, "tracker": tracker, "goals": GOALS,
                     **({"previous": previous} if previous else {})}, results / "llc_laptop_interface.json")
    fig = plot_route_curves(pd.read_csv(run / "tracker_curve.csv"), pd.read_csv(run / "distill_curve.csv"),
                            title="llc_laptop.pth: tracking route over samples")
    prov.finish().save_figure(fig, root / "figures" / "llc_laptop_route_curves.png")
    fig = plot_sliding(pd.read_csv(results / "llc_laptop_sliding.csv", comment="#"))
    prov.finish().save_figure(fig, root / "figures" / "llc_laptop_sliding.png")
    if ft_curve is not None:
        parts = len(student_state.get("finetune_phases", [])) + 1
        fig = plot_latent_finetune(ft_curve, title="llc_laptop.pth: RL fine-tune on the latents a high-level policy "
                                   "sends" + (f" (part {parts} of {parts})" if parts > 1 else ""))
        prov.finish().save_figure(fig, root / "figures" / "llc_laptop_latent_finetune.png")
    info = json.loads((run / "train_info.json").read_text()) if (run / "train_info.json").is_file() else {}
    info.update({"tracking": student_state["tracking"], "ppo": tracker_state["ppo"],
                 "distill": {**distilled["distill"], "samples": int(distilled["samples"]),
                             "wall_s": info.get("distill_wall_s", float("nan"))},
                 "tracker": {"samples": int(tracker_state["samples"]),
                             "wall_s": info.get("tracker_wall_s", float("nan"))},
                 "durations": lib.durations.tolist(), "seed": student_state.get("seed", 0),
                 "commit": git_commit(root), "machine": machine() + " (shared with other work)",
                 "limits": list(limits or []), "history": list(history or [])})
    if ft_curve is not None:
        info["finetune"] = [*student_state.get("finetune_phases", []),
                            {"settings": student_state["latent_finetune"], "samples": int(student_state["samples"]),
                             "wall_s": curve_wall_s(student_state["curve"])}]
    card = model_card(info, {**metrics, **({"previous": previous} if previous else {})}, tracker,
                      curve_tables(run, finetune, len(info.get("finetune", [None]))), str(calm),
                      results / "llc_hlc_pose_goals.csv")
    (ck / "llc_laptop.md").write_text(card)
    return card


def _ship(args: argparse.Namespace) -> int:
    limits = args.limits.read_text().splitlines() if args.limits else []
    history = args.history.read_text().splitlines() if args.history else []
    card = ship_llc(args.run, args.calm, args.root, args.seed, limits, args.motions, args.skill_seconds,
                    args.idle_seconds, args.random_seconds, history, args.finetune)
    print(card)
    return 0


def add_ship_command(sub) -> None:
    """Register ``ship-llc`` on the ``anyskill`` parser's sub-parsers."""
    s = sub.add_parser("ship-llc", help="ship a tracking-route run as the default controller: evaluate it beside an "
                       "untrained student and CALM, write its results, figures and model card",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("run", type=Path, help="the --out folder of `anyskill train-llc --route tracking`")
    s.add_argument("--calm", default=CALM_LAPTOP,
                   help="the CALM controller compared (relative to --root unless absolute)")
    s.add_argument("--root", type=Path, default=REPO_ROOT, help="where anyskill/checkpoints, results/ and figures/ are "
                   "(default: this repository)")
    s.add_argument("--limits", type=Path, help="a text file of measured limitations for the card (one per line)")
    s.add_argument("--history", type=Path, help="a text file of lines on how the run was made beyond its settings "
                   "(one per line), e.g. the controller it continues")
    s.add_argument("--finetune", type=Path, help="the --out folder of `anyskill finetune-llc` on RUN's student: its "
                   "controller ships instead of the distilled one")
    s.add_argument("--motions", help="motion manifest YAML (default: the bundled one)")
    s.add_argument("--skill-seconds", type=float, default=10.0, help="held latent from standing, s")
    s.add_argument("--idle-seconds", type=float, default=60.0, help="how long the idle latent must keep it standing, s")
    s.add_argument("--random-seconds", type=float, default=10.0, help="random unit latents from standing, s")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_ship)
