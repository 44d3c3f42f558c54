"""Package a `laptop` CALM run (``train-llc --route calm --scale laptop``): pick its best checkpoint, ship it as
the CALM controller ``llc_calm_laptop.pth`` (the default controller is the tracking route's, see
``finish_tracking_llc.py``), evaluate it, write its model card.

    .venv/bin/python scripts/finish_laptop_llc.py runs/llc_laptop [--every 4] [--select best|latest]

1. the held-out skill evaluation (:func:`anyskill.llc.skills.evaluate_skills`: every clip's latent for 10 s from
   standing; survival, skill identification, own-clip pose distance; the idle latent for 60 s) of every
   ``--every``-th checkpoint of the run -> the skill curve (metrics against training samples);
2. ``--select best`` (default) ships the checkpoint with the most skills identified (ties: more latents standing,
   then the smaller own-clip distance); ``latest`` the newest one;
3. writes ``anyskill/checkpoints/llc_calm_laptop.pth`` with what inference and fine-tuning of the weights need
   (``model``: networks and normalisers, ``calm_config``, ``epoch``, ``frame``), without the optimiser state; if
   that is still over the size limit, the largest float32 matrices are stored in float16 (largest first, only as
   many as needed; ``load_llc`` casts them back), and the card reports the resulting output differences;
4. evaluates the shipped file against the untrained controller of the same configuration (the policy training
   started from): skills, per-clip imitation from each clip's first frame (:func:`evaluate_llc`), held-out
   discriminator accuracy (:func:`learning_signals`);
5. writes results/llc_calm_laptop_{eval.csv, skills.csv, skills.json, skills_distances.csv, skill_curve.csv},
   figures/llc_calm_laptop_{eval, skills, skill_curve}.png, the learning and skill curves next to the checkpoint (for
   notebook 02) and the model card ``anyskill/checkpoints/llc_calm_laptop.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 15 * 10**6  # below the 16 MB limit on files in the package, with headroom for the pickle framing
REFERENCE_SAMPLES = 14500 * 32 * 1024  # the shipped reference LLC: epochs x horizon x envs (facts §2.4-2.5)
GOALS = {"survival_rate": 0.8, "top1_accuracy": 0.5, "mean_own_distance_m": 0.12}
"""The goals of the low-level-controller issue for the shipped controller (the idle latent must also stand 60 s)."""


def strip_checkpoint(state: dict, max_bytes: int = MAX_BYTES) -> tuple[dict, list[str]]:
    """Inference copy of an rl-games CALM checkpoint and the names of tensors stored in float16."""
    model = {k: v.clone() for k, v in state["model"].items()}
    halved: list[str] = []
    size = sum(v.numel() * v.element_size() for v in model.values())
    for name in sorted(model, key=lambda k: -model[k].numel()):
        if size <= max_bytes:
            break
        tensor = model[name]
        if tensor.dtype != torch.float32 or tensor.dim() < 2:
            continue
        model[name] = tensor.half()
        halved.append(name)
        size -= tensor.numel() * 2
    if size > max_bytes:
        raise ValueError(f"checkpoint weights are {size / 2**20:.1f} MiB even in float16; the limit is "
                         f"{max_bytes / 2**20:.1f} MiB: train smaller networks")
    stripped = {"model": model, "calm_config": state["calm_config"], "epoch": state["epoch"], "frame": state["frame"],
                "stored_in_float16": halved}
    return stripped, halved


@torch.no_grad()
def precision_check(full_path: Path, shipped_path: Path, lib, n: int = 256) -> dict[str, float]:
    """Largest differences between the full and the shipped controller on demo windows and reference states,
    each controller using its own latents (so encoder differences propagate to actions and logits)."""
    from anyskill.humanoid.obs import policy_obs
    from anyskill.llc import load_llc

    full, shipped = load_llc(full_path), load_llc(shipped_path)
    gen = torch.Generator().manual_seed(0)
    _, _, windows = lib.sample_amp_windows(n, full.enc_steps, full.motion_dt, generator=gen)
    clips = lib.sample_clips(n, generator=gen)
    s = lib.state_at(clips, lib.sample_times(clips, generator=gen))
    obs = policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel)
    z_full, z_ship = full.encode(windows), shipped.encode(windows)
    amp = windows[:, : full.disc_steps].reshape(n, -1)
    return {
        "latent_max_abs_diff": float((z_full - z_ship).abs().max()),
        "action_max_abs_diff": float((full.act(obs, z_full) - shipped.act(obs, z_ship)).abs().max()),
        "disc_logit_max_abs_diff": float(
            (full.discriminator_score(amp, z_full) - shipped.discriminator_score(amp, z_ship)).abs().max()),
    }


def select_checkpoint(curve: pd.DataFrame, how: str) -> str:
    """File name of the checkpoint to ship: the newest, or the best by (identified, standing, -own distance)."""
    if how == "latest":
        return str(curve["checkpoint"].iloc[-1])
    key = curve[["top1_accuracy", "survival_rate"]].assign(dist=-curve["mean_own_distance_m"])
    best = key.sort_values(["top1_accuracy", "survival_rate", "dist"], kind="stable").index[-1]
    return str(curve.loc[best, "checkpoint"])


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _goal_rows(skills: dict, baseline: dict) -> pd.DataFrame:
    def row(name, key, goal, fmt):
        return {"metric": name, "goal": goal, "shipped": fmt(skills[key]), "untrained (start of training)": fmt(baseline[key])}

    pct = "{:.0%}".format
    return pd.DataFrame([
        row("latents that stay up 10 s from standing", "survival_rate", "≥ 80 %", pct),
        row("idle latent stands 60 s", "idle_survived", "yes", lambda v: "yes" if v else "no"),
        row("skill identification top-1 (chance 1/18)", "top1_accuracy", "≥ 50 %", pct),
        row("mean own-clip pose distance", "mean_own_distance_m", "≤ 0.12 m", "{:.3f} m".format),
    ])


def model_card(info: dict, source: Path, shipped: Path, size_mb: float, halved: list[str], precision: dict,
               skills, base_skills, curve: pd.DataFrame, imitation: pd.DataFrame, signals: dict, prov: dict,
               files: dict[str, Path]) -> str:
    from anyskill.llc.evaluate import summarize

    net, cfg = info["network"], info["config"]
    calm = cfg["calm"]
    env = info["env"]
    per_clip = skills.per_clip.assign(
        fall_time_s=skills.per_clip["fall_time_s"].map(lambda v: "" if v != v else f"{v:.1f}"))
    per_clip = per_clip[["clip", "category", "survived", "fall_time_s", "own_distance_m", "nearest_other_m",
                         "identified_as"]]
    curve_rows = curve.reset_index()[["samples", "epoch", "survival_rate", "top1_accuracy", "mean_own_distance_m",
                                      "idle_survived", "identified"]]
    signals_rows = pd.DataFrame([{"controller": who, **{k: round(v, 3) if isinstance(v, float) else v
                                                        for k, v in s.items()}} for who, s in signals.items()])
    train_prov = info["provenance"]
    wall = float(info.get("wall_time_s", float("nan")))
    met = [k for k, goal in GOALS.items()
           if (skills.summary[k] <= goal if k == "mean_own_distance_m" else skills.summary[k] >= goal)]
    return f"""# Model card: `llc_calm_laptop.pth` — CALM low-level controller, `laptop` scale

A low-level controller (paper §3.1: motion encoder E, latent-conditioned policy π_L(a|s,z), conditional
discriminator D) trained with `anyskill train-llc --route calm --scale laptop --seed {train_prov['seed']}` on a 2-core CPU. It is
small and early next to the reference controller (≈14.5k epochs of 1024 envs x 32 steps ≈
{REFERENCE_SAMPLES / 1e6:.0f} M samples on a GPU, facts §2.4-2.5): {info['samples']:,} samples, {100 * info['samples'] / REFERENCE_SAMPLES:.2g} % of that.

Load it with `anyskill.llc.load_llc("{_rel(shipped)}")`.

## Held-out skills against the goals
Every clip's latent (its first 2-s window) held for 10 s from the default standing pose, deterministic actions;
identification by the symmetric chamfer pose distance (`anyskill.llc.skills`; `anyskill eval-llc --skills`).
Goals met: {len(met)} of {len(GOALS)} numeric goals ({', '.join(met) or 'none'}) — see the table.

{_table(_goal_rows({**skills.summary}, {**base_skills.summary}))}

Per latent (files `{_rel(files['skills_csv'])}`, `{_rel(files['skills_png'])}`):

{_table(per_clip)}

### Over training
The same evaluation on every {info['curve_every']}th checkpoint of the run (`{_rel(files['curve_csv'])}`,
`{_rel(files['curve_png'])}`); the shipped checkpoint is `{source.name}` (selected: {info['selected_by']}).
With `best`, the checkpoint is chosen on this same evaluation, so its row is an optimistic pick from a noisy curve:
compare it with its neighbours in the table below.

{_table(curve_rows)}

## Data
- manifest: `{Path(info['manifest']).name}` ({len(info['clips'])} clips, {info['total_motion_s']} s of motion in total),
  drawn {env.get('motion_weights', 'manifest')}
- clips: {", ".join(f"`{c}`" for c in info['clips'])}

## Training
| item | value |
|---|---|
| scale | {info['scale']} |
| envs | {info['num_envs']} (MuJoCo CPU, 30 Hz control, 120 Hz physics) |
| env | state init `{env['state_init']}` (p={env['hybrid_init_prob']}), fall-state bank p={env['fall_init_prob']}, recovery episodes p={env['recovery_episode_prob']}, episode length {env['episode_length']} steps |
| epochs / samples | {info['epochs']} / {info['samples']:,} (shipped checkpoint) |
| PPO | horizon {cfg['horizon_length']}, minibatch {cfg['minibatch_size']}, mini-epochs {cfg['mini_epochs']}, γ {cfg['gamma']}, λ {cfg['tau']}, clip {cfg['e_clip']} |
| learning rates | actor {calm['lr_actor']}, critic {calm['lr_critic']}, encoder {calm['lr_encoder']}, discriminator {calm['lr_disc']}; KL-adaptive (target {calm['kl_target']}) |
| CALM | latent {net['latent_dim']}, encoder stride {net.get('enc_stride', 1)}, discriminator {net['disc_steps']} frames, AMP minibatch {calm['amp_minibatch_size']} every {calm['disc_update_every']} PPO steps, replay {calm['replay_buffer_size']} (keep {calm['replay_keep_prob']}), negatives {calm['negative_disc_samples']}, grad penalty {calm['disc_grad_penalty']} |
| options of ours | latents coupled to reference starts (p={calm['latent_from_reset_prob']}) and default starts (p={calm['latent_from_default_prob']}), tracking reward w={calm['track_reward_weight']} (kernels {calm['track_reward_scale']} / {calm['track_reward_scale_wide']}), encoder through policy {calm['encoder_through_policy']}, rest-pose actor init, precision {calm['precision']} |
| networks | encoder {net['enc_units']}, actor {net['actor_units']}, critic {net['critic_units']}, discriminator {net['disc_units']}, style {net['style_units']} → {net['style_dim']} |
| wall time | {wall / 3600:.2f} h (the run's last segment{', resumed from ' + str(info['resumed_from']) if info.get('resumed_from') else ''}) |
| torch threads | {info.get('torch_threads')} |
| machine | {train_prov['machine']} |
| commit (training) | `{train_prov['commit']}` |

## Shipped file
- {size_mb:.1f} MB; optimiser state removed (resume training from the run's own checkpoints, which also keep the
  exact-resume state).
- stored in float16 (cast back to float32 on load): {', '.join(f'`{n}`' for n in halved) or 'nothing'}; largest
  differences to the full checkpoint: latent {precision['latent_max_abs_diff']:.2e}, action
  {precision['action_max_abs_diff']:.2e}, discriminator logit {precision['disc_logit_max_abs_diff']:.2e}.

## Imitation from each clip's own first frame (commit `{prov['commit']}`)
Encode the clip's first 2 s, start in its first frame, act on that latent for min(5 s, max(duration, 2 s)):
survival, body errors against the clip at the same times (local: root-relative, heading frame), discriminator
on the agent's windows. Files: `{_rel(files['eval_csv'])}`, `{_rel(files['eval_png'])}`.

{_table(summarize(imitation))}

Held-out discriminator accuracy (`learning_signals`: 32 hybrid starts on random clip latents, 512 demo windows):

{_table(signals_rows)}

## Known limitations
- Compute: {100 * info['samples'] / REFERENCE_SAMPLES:.2g} % of the reference's samples, on two CPU cores. The numbers above are what this
  budget reached; the curve shows the trend. The GPU path (`--scale paper --device cuda:0`, MuJoCo Warp) is the
  way to the reference budget.
- Options of ours (tracking reward, coupled latents, rest-pose init, no get-up training, encoder trained by its
  regulariser only) depart from CALM/AnySkill to learn faster on a CPU; `--scale paper` keeps the reference
  configuration. The controller does not get up after a fall (no get-up training at this scale).
- Bundled data only: {len(info['clips'])} clips ({info['total_motion_s']} s) — 6 CMU-derived AMP clips, 2 retargeted
  CMU BVH clips and 10 authored gestures (keyframed, not motion capture). Near-identical clips (the three walks,
  the standing gestures) are close under the identification metric (`clip_distance_matrix`).
- MuJoCo physics (implicit PD, 120 Hz) instead of Isaac Gym/PhysX: behaviour differs from the paper's humanoid
  even at equal training.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", default=str(ROOT / "runs" / "llc_laptop"))
    parser.add_argument("--out", default=str(ROOT / "anyskill" / "checkpoints" / "llc_calm_laptop.pth"))
    parser.add_argument("--every", type=int, default=4, help="evaluate every k-th checkpoint for the skill curve")
    parser.add_argument("--select", choices=["best", "latest"], default="best")
    parser.add_argument("--eval-root", default=str(ROOT), help="folder receiving results/ and figures/")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    import matplotlib

    matplotlib.use("Agg")
    from anyskill.llc import load_llc
    from anyskill.llc.calm.train import run_checkpoints
    from anyskill.llc.evaluate import evaluate_llc, learning_signals, untrained_llc
    from anyskill.llc.motions import load_motions
    from anyskill.llc.skills import evaluate_skills, skill_curve
    from anyskill.provenance import Provenance
    from anyskill.viz.llc_eval import plot_llc_eval, plot_skill_curves, write_skill_eval
    from anyskill.viz.training import read_tensorboard

    run_dir = Path(args.run_dir)
    info = json.loads((run_dir / "train_info.json").read_text())
    lib, _ = load_motions(info["manifest"])
    checkpoints = run_checkpoints(run_dir)
    picked = checkpoints[::args.every]
    if picked[-1] != checkpoints[-1]:
        picked.append(checkpoints[-1])
    curve = skill_curve(picked, lib, progress=True)
    source = run_dir / "nn" / select_checkpoint(curve, args.select)
    state = torch.load(source, map_location="cpu", weights_only=False)
    stripped, halved = strip_checkpoint(state)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stripped, out)
    size_mb = out.stat().st_size / 1e6
    if out.stat().st_size >= 16 * 10**6:  # MB as the package limit counts them
        raise SystemExit(f"{out} is {size_mb:.1f} MB, over the 16 MB limit")
    print(f"{source.name} (epoch {state['epoch']}) -> {out} ({size_mb:.1f} MB; float16: {halved or 'none'})")
    info.update(epochs=int(state["epoch"]), samples=int(state["frame"]), curve_every=args.every,
                selected_by=args.select)

    prov = Provenance("scripts/finish_laptop_llc.py", config={"checkpoint": _rel(out), "source": source.name,
                                                              "select": args.select, "every": args.every}, seed=0)
    precision = precision_check(source, out, lib)
    trained = load_llc(out)
    untrained = untrained_llc(trained)
    skills, base_skills = evaluate_skills(trained, lib), evaluate_skills(untrained, lib)
    imitation = evaluate_llc(trained, motion_lib=lib, baseline=True)
    signals = {"trained": learning_signals(trained, lib), "untrained": learning_signals(untrained, lib)}
    prov.finish()

    root = Path(args.eval_root)
    eval_csv = prov.write_csv(imitation, root / "results" / "llc_calm_laptop_eval.csv")
    eval_png = prov.save_figure(plot_llc_eval(imitation), root / "figures" / "llc_calm_laptop_eval.png")
    skills_csv, _, skills_png = write_skill_eval(
        skills, root / "results", prov, stem="llc_calm_laptop_skills", figures_dir=root / "figures",
        title=f"held-out skills of llc_calm_laptop.pth ({info['samples']:,} samples)")
    curve_csv = prov.write_csv(curve.reset_index(), root / "results" / "llc_calm_laptop_skill_curve.csv")
    curve_png = prov.save_figure(plot_skill_curves(curve, goals=GOALS, title="held-out skills over training"),
                                 root / "figures" / "llc_calm_laptop_skill_curve.png")
    read_tensorboard(run_dir).to_csv(out.with_name(out.stem + "_curves.csv"))  # learning curves for notebook 02
    curve.to_csv(out.with_name(out.stem + "_skill_curve.csv"))
    files = {"eval_csv": eval_csv, "eval_png": eval_png, "skills_csv": skills_csv, "skills_png": skills_png,
             "curve_csv": curve_csv, "curve_png": curve_png}
    card = model_card(info, source, out, size_mb, halved, precision, skills, base_skills, curve, imitation, signals,
                      prov.as_dict(), files)
    out.with_suffix(".md").write_text(card)
    print(f"wrote the model card {out.with_suffix('.md')}; skills: {skills.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
