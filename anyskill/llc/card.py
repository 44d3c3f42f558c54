"""The model card of a shipped tracking-route controller and the numbers it reports (``anyskill ship-llc``,
:mod:`anyskill.viz.ship_llc`): interface metrics of a controller (held skills, sliding and random latents), the
goals they are read against, curve tables of a route run, and the card's Markdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anyskill.llc.latent_checks import evaluate_random_latents, evaluate_sliding, evaluate_untrained_hlc
from anyskill.llc.skills import SkillEvaluation, evaluate_skills

GOALS = {"top1": 0.6, "survival": 0.9, "sliding_finished": 15, "sliding_error_m": 0.08, "tracker_finished": 16,
         "tracker_error_m": 0.05, "random_held": 0.9, "random_switched": 0.9, "hlc_free": 0.95}
"""What the card reads each metric against (the issue's targets for the CPU-trained controller)."""
LEGACY_CHECK_ENVS = 32
"""Characters of the random-latent checks recorded before the count was (now
:data:`~anyskill.config.eval.LATENT_CHECK_ENVS`)."""


def strip(state: dict, keep: tuple[str, ...]) -> dict:
    """The entries of a checkpoint dict that inference needs (``keep``), without optimiser states."""
    return {k: v for k, v in state.items() if k in keep}


def interface_metrics(llc, lib, seed: int, skill_seconds: float = 10.0, idle_seconds: float = 60.0,
                      random_seconds: float = 10.0) -> tuple[dict, SkillEvaluation, pd.DataFrame]:
    """The card's numbers of one controller on ``lib``: held latents from standing (``skill_seconds``; the idle
    latent ``idle_seconds``), sliding latents from each clip's first frame, random unit latents held / switched
    (``random_seconds``), the latents of untrained high-level policies through the free action (``random_seconds``).
    Returns them, the skill evaluation and the sliding table."""
    skills = evaluate_skills(llc, lib, seconds=skill_seconds, idle_seconds=idle_seconds, seed=seed)
    sliding = evaluate_sliding(llc, lib, seed=seed)
    rnd = evaluate_random_latents(llc, lib, seconds=random_seconds, seed=seed)
    hlc = evaluate_untrained_hlc(llc, lib, seconds=random_seconds, seed=seed, modes=("free",))
    s = skills.summary
    return ({"top1": s["top1_accuracy"], "survival": s["survival_rate"], "idle_60s": bool(s["idle_survived"]),
             "own_distance_m": s["mean_own_distance_m"], "sliding_finished": int(sliding["finished"].sum()),
             "sliding_error_m": float(sliding["local_error_m"].mean()), "random_held": rnd["held_survival"],
             "random_switched": rnd["switched_survival"], "random_envs": int(rnd["num"]),
             "hlc_free": hlc["free_survival"],
             "identified": ",".join(skills.per_clip.loc[skills.per_clip["identified"], "clip"])}, skills, sliding)


def regimes(d: dict) -> str:
    """The latent regimes of a student's distillation settings (a DistillConfig as a dict), in words."""
    sliding, switch, rand = d.get("sliding_prob", 0.5), d.get("switch_prob", 0.0), d.get("random_latent_prob", 0.0)
    parts = [f"{sliding:.0%} of episodes with latents re-encoded every {d.get('llc_steps', 5)} steps from the window "
             "that starts now (sliding)"]
    if switch or rand:
        to = (f"windows of the {len(d['switch_clips'])} clips the tracker performs ({', '.join(d['switch_clips'])})"
              if d.get("switch_clips") else "windows of any clip")
        parts += [f"{switch:.0%} switching to random {to} at the high-level cadence or after up to "
                  f"{d.get('max_switch_steps', 90)} steps",
                  f"{rand:.0%} switching as often to random unit latents, labelled with the tracker following the "
                  "nearest of those windows"
                  + (f" ({d['random_hold_prob']:.0%} of them holding one random latent to the episode's end)"
                     if d.get("random_hold_prob") else "")]
    parts.append(f"{1 - sliding - switch - rand:.0%} with one latent held while the reference plays on and loops")
    return ", ".join(parts)


def finetune_lines(parts: list[dict]) -> list[str]:
    """The card's lines on stage 3, the RL fine-tune, one per part (``info["finetune"]``: dicts of ``settings``, the
    LatentFinetuneConfig fields, ``samples`` and ``wall_s``; a part continues the one before with other settings)."""
    out = []
    for k, part in enumerate(parts):
        f = part["settings"]
        clip = 1 - f["held_random_prob"] - f["cadence_random_prob"] - f["interval_random_prob"]
        head = "Stage 3" + (f", part {k + 1} of {len(parts)}" if len(parts) > 1 else "")
        out.append(
            f"* {head}, RL fine-tune of π_L on the latents a high-level policy sends (`anyskill finetune-llc`, "
            f"`anyskill.llc.tracking.latent_finetune`): PPO on survival (1 per control step, a fall ends the episode;"
            f" fixed std {f['action_std']}, KL to the distilled policy × {f['anchor_coef']}, encoder frozen) on the "
            f"high-level env from standing ({f['clip_start_prob']:.0%} of episodes from a clip's state), with "
            f"{f['held_random_prob']:.0%} of episodes holding one random unit latent, {f['cadence_random_prob']:.0%} "
            f"redrawing it every {f['llc_steps']} steps, {f['interval_random_prob']:.0%} after up to "
            f"{f['max_switch_steps']} steps and {clip:.0%} holding a clip window's latent: **{part['samples']:,} "
            f"samples, {part['wall_s'] / 60:.0f} min**.")
    return out


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and v != v:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}" if v < 1.0 or v != int(v) else f"{v:.0f}"
    return str(v)


def model_card(info: dict, m: dict, tracker: dict, curves: dict, calm_path: str, hlc_csv: Path | None = None) -> str:
    """The model card of a shipped tracking-route controller (``llc_laptop.md``): how it was made (``info``), the
    interface metrics of the shipped, untrained and CALM controllers (``m``), the tracker's (``tracker``), the curves
    over training (:func:`curve_tables`), its measured limits and the high-level comparison (``hlc_csv``)."""
    rows = [("held latent from standing: skills identified (top-1, chance 1/18)", "top1", "≥ 60 %", "pct"),
            ("held latent: stay up 10 s", "survival", "≥ 90 %", "pct"),
            ("idle latent stands 60 s", "idle_60s", "yes", ""),
            ("held latent: mean own-clip pose distance (m)", "own_distance_m", "—", ""),
            ("sliding latents from each clip's first frame: finished without a fall (of 18)", "sliding_finished",
             "≥ 15", ""),
            ("sliding latents: mean root-relative body error (m)", "sliding_error_m", "≤ 0.08", ""),
            ("random unit latents held 10 s from standing: stay up", "random_held", "≥ 90 %", "pct"),
            ("random unit latents switched every 5 steps: stay up", "random_switched", "≥ 90 %", "pct"),
            ("latents of an untrained π_H (free action, every 5 steps): stay up", "hlc_free", "≥ 95 %", "pct")]
    envs = m["shipped"].get("random_envs", LEGACY_CHECK_ENVS)
    rows = [(f"{label} (of {envs} characters)" if key.startswith(("random_", "hlc_")) else label, key, goal, kind)
            for label, key, goal, kind in rows]

    def cell(d: dict, key: str, kind: str) -> str:
        if key not in d:  # recorded before the metric was
            return "—"
        v = d[key]
        text = f"{v:.0%}" if kind == "pct" else _fmt(v)
        n = d.get("random_envs", LEGACY_CHECK_ENVS)
        return text + (f" (of {n})" if key.startswith(("random_", "hlc_")) and n != envs else "")

    prev = m.get("previous")
    prev_head = f" previous default (recorded at {prev['commit'][:7]}) |" if prev else ""
    table = ["| metric | goal | shipped (tracking route) |" + prev_head
             + " untrained student | CALM `laptop` (the default before the tracking route) |",
             "|---|---|---|" + ("---|" if prev else "") + "---|---|"]
    for label, key, goal, kind in rows:
        prev_cell = f" {cell(prev, key, kind)} |" if prev else ""
        table.append(f"| {label} | {goal} | {cell(m['shipped'], key, kind)} |{prev_cell} "
                     f"{cell(m['untrained'], key, kind)} | {cell(m['calm'], key, kind)} |")
    t, z = tracker["trained"], tracker["replay"]
    dash = " — |" if prev else ""
    table.append(f"| tracker with the reference, first frame: finished (of 18) | ≥ 16 | {t['finished']} |{dash} "
                 f"{z['finished']} (zero residual = PD replay) | — |")
    table.append(f"| tracker: mean root-relative body error (m) | ≤ 0.05 | {t['error_m']:.3f} |{dash} "
                 f"{z['error_m']:.3f} | — |")
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
        f"`{calm_path}` (its card beside it)"
        + (f"; the default it replaced is in the history (`git show {prev['checkpoint_commit'][:7]}:anyskill/"
           "checkpoints/llc_laptop.pth`)." if prev else "."),
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
        f"counted by the controller; saturates at {info['distill']['timing_horizon']}): {regimes(info['distill'])}; "
        f"{info['distill']['latent_noise_prob']:.0%} of latents noised; CALM's align + uniform encoder "
        f"regulariser: **{di['samples']:,} samples, {di['wall_s'] / 60:.0f} min**.",
        *finetune_lines(info.get("finetune", [])),
        *(f"* {line}" for line in info.get("history", [])),
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
        *([curves["finetune_table"], ""] if "finetune_table" in curves else []),
        "## What it cannot do (measured)",
        *info["limits"],
        *(hlc_section(hlc_csv) if hlc_csv is not None else []),
    ]
    return "\n".join(lines) + "\n"


ANCHOR_SWEEP = "llc_laptop_untrained_hlc_anchor_scales.csv"
"""``anyskill eval-llc --anchor-scales`` of the shipped controller, beside the pose comparison in ``results/``."""


def hlc_section(path: Path) -> list[str]:
    """The high-level comparison of ``anyskill compare-llc-pose`` (pose goals of 5 clips, both controllers, each
    latent action), from its CSV at ``path`` (nothing when it is missing), and what an untrained π_H does through
    anchored actions of each σ when :data:`ANCHOR_SWEEP` lies beside it."""
    if not path.is_file():
        return []
    df = pd.read_csv(path, comment="#")
    keys = ["controller", "latent_action"] if "latent_action" in df else ["controller"]
    mean = df.groupby(keys)[["pose_error_untrained_m", "pose_error_trained_m"]].mean().reset_index()
    return ["", "## One level up: high-level policies on pose goals",
            "π_H trained on each controller toward the middle frame of 5 clips (`anyskill compare-llc-pose`: "
            "`laptop` profile, 60 epochs × 32 envs, seed 0; π_H's action a free unit latent, the paper's, or "
            "anchored on the latent prior, z = normalize(μ_p(s) + σ·a), σ 0.3 unless named); mean pose error (m) of "
            "deterministic 2-s rollouts from standing"
            f" before and after training (`results/{path.name}`):", "",
            markdown_table(df.drop(columns=["train_s"])), "", "Mean over the goals:", "", markdown_table(mean),
            *_anchor_sweep(path.with_name(ANCHOR_SWEEP))]


def _anchor_sweep(path: Path) -> list[str]:
    """The untrained-π_H rows of ``anyskill eval-llc --anchor-scales`` at ``path`` (nothing when it is missing)."""
    if not path.is_file():
        return []
    df = pd.read_csv(path, comment="#")
    n = int(df.pop("characters").iloc[0]) if "characters" in df else LEGACY_CHECK_ENVS
    return ["", "The price of a larger σ: an untrained π_H (its initial mean and std, a new latent every 5 steps, "
            f"{n} characters from standing, 10 s) through anchored actions of each σ — fraction that stays up and "
            f"pose spread (m) (`anyskill eval-llc --anchor-scales`, `results/{path.name}`):", "",
            markdown_table(df)]


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe table of ``df`` (floats to 3 decimals), without pandas' optional tabulate dependency."""
    cells = [[_fmt(v.item() if hasattr(v, "item") else v) for v in row] for row in df.itertuples(index=False)]
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def curve_tables(run: Path, finetune: Path | None = None, parts: int = 1) -> dict:
    """Markdown tables of the evaluations in a route run's ``tracker_curve.csv`` and ``distill_curve.csv`` (every 20th
    row of the student's when it holds no evaluations) and, with a ``finetune-llc`` folder, of its falls per env-step
    per latent regime (means over 8 near-equal blocks of iterations). ``parts``: how many fine-tune parts made the
    controller (a continuation's curve covers its own part only, and the caption says so)."""
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
    if finetune is not None:
        fc = pd.read_csv(Path(finetune) / "latent_finetune_curve.csv")
        cols = ["falls_per_step", *(c for c in fc.columns if c.startswith("falls_") and c != "falls_per_step"),
                "anchor_kl"]
        blocks = min(8, len(fc))
        t = fc.groupby(np.arange(len(fc)) * blocks // len(fc)).agg({"samples": "last", **dict.fromkeys(cols, "mean")})
        t[cols[:-1]] *= 1000.0
        t = t.rename(columns={c: "all regimes" if c == "falls_per_step" else c.removeprefix("falls_")
                              for c in cols[:-1]})
        which = f", part {parts} of {parts}; the curve covers this part only" if parts > 1 else ""
        out["finetune_table"] = (f"RL fine-tune (stage 3{which}): falls per 1000 env-steps of each latent regime "
                                 "under the exploration noise, and the KL to the distilled policy, means over "
                                 f"{len(fc) // blocks}-{-(-len(fc) // blocks)} iterations:\n\n" + markdown_table(t))
    return out
