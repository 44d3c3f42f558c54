"""Package the `laptop` LLC run: ship its latest checkpoint, evaluate it, write its model card.

    .venv/bin/python scripts/finish_laptop_llc.py runs/llc_laptop

1. picks the checkpoint of the highest epoch in ``<run>/nn``;
2. writes ``anyskill/checkpoints/llc_laptop.pth`` with what inference and fine-tuning of the weights need
   (``model``: networks and normalisers, ``calm_config``, ``epoch``, ``frame``) and without the optimiser
   state; if that is still over the size limit, the largest float32 matrices are stored in float16
   (largest first, only as many as needed; ``load_llc`` casts them back), and the card reports the
   resulting latent/action/logit differences;
3. evaluates the shipped file against an untrained controller of the same size (:func:`evaluate_llc`,
   :func:`learning_signals`) -> ``results/llc_laptop_eval.csv``, ``figures/llc_laptop_eval.png``;
4. writes the model card ``anyskill/checkpoints/llc_laptop.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 15 * 10**6  # below the 16 MB limit on files in the package, with headroom for the pickle framing
REFERENCE_SAMPLES = 14500 * 32 * 1024  # the shipped reference LLC: epochs x horizon x envs (facts §2.4-2.5)


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
    _, _, windows = lib.sample_amp_windows(n, full.enc_steps, 1 / 30, generator=gen)
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


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _table(df, floatfmt: str = ".3f") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        cells = [format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(info: dict, source: Path, shipped: Path, size_mb: float, halved: list[str], precision: dict,
               df, signals: dict, prov: dict, eval_paths: tuple[Path, Path]) -> str:
    from anyskill.llc.evaluate import summarize

    net = info["network"]
    cfg = info["config"]
    calm = cfg["calm"]
    summary = summarize(df)
    per_clip = df.pivot_table(index="clip", columns="controller", sort=False,
                              values=["survival_s", "body_err_local_m", "style_reward"]).round(3)
    per_clip.columns = [f"{metric} ({who})" for metric, who in per_clip.columns]
    per_clip = per_clip.reset_index()
    signals_rows = [{"controller": who, **{k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}}
                    for who, s in signals.items()]
    import pandas as pd

    train_prov = info["provenance"]
    wall = info.get("wall_time_s", float("nan"))
    resumed = info.get("resumed_from")
    return f"""# Model card: `llc_laptop.pth` — CALM low-level controller, `laptop` scale

A low-level controller (paper §3.1: motion encoder E, latent-conditioned policy π_L(a|s,z), conditional
discriminator D) trained with `anyskill train-llc --scale laptop` on a 2-core CPU ({wall / 60:.0f} min).
It is a **small, early** CALM: enough to show the training signal and to exercise the high-level policy
code path, far from the reference controller (≈14.5k epochs of 1024 envs x 32 steps ≈ {REFERENCE_SAMPLES / 1e6:.0f} M
samples on a GPU, facts §2.4-2.5).

Load it with `anyskill.llc.load_llc("{_rel(shipped)}")`.

## Data
- manifest: `{Path(info['manifest']).name}` ({len(info['clips'])} clips, {info['total_motion_s']} s of motion in total)
- clips: {", ".join(f"`{c}`" for c in info['clips'])}

## Training
| item | value |
|---|---|
| scale | {info['scale']} |
| envs | {info['num_envs']} (MuJoCo CPU, 30 Hz control, 120 Hz physics) |
| env | state init `{info['env']['state_init']}` (p={info['env']['hybrid_init_prob']}), fall-state bank p={info['env']['fall_init_prob']}, recovery episodes p={info['env']['recovery_episode_prob']} ({info['env']['recovery_steps']} steps), episode length {info['env']['episode_length']} steps |
| epochs | {info['epochs']} (checkpoint used: `{source.name}`) |
| samples (env steps) | {info['samples']:,} |
| PPO | horizon {cfg['horizon_length']}, minibatch {cfg['minibatch_size']}, mini-epochs {cfg['mini_epochs']}, lr {cfg['learning_rate']}, γ {cfg['gamma']}, λ {cfg['tau']} |
| CALM | latent {net['latent_dim']}, AMP batch {calm['amp_batch_size']} / minibatch {calm['amp_minibatch_size']}, demo buffer {calm['demo_buffer_size']}, replay {calm['replay_buffer_size']}, disc coef {calm['disc_coef']}, grad penalty {calm['disc_grad_penalty']} |
| networks | encoder {net['enc_units']}, actor {net['actor_units']}, critic {net['critic_units']}, discriminator {net['disc_units']}, style {net['style_units']} → {net['style_dim']} |
| wall time | {wall / 60:.1f} min for {info['logged_epochs']} epochs{' (last segment; resumed from ' + str(resumed) + ')' if resumed else ''} |
| torch threads | {info.get('torch_threads')} |
| machine | {train_prov['machine']} |
| commit (training) | `{train_prov['commit']}` |
| seed | {train_prov['seed']} |

## Shipped file
- {size_mb:.1f} MB; optimiser state removed (resume training from the run's full checkpoint instead).
- stored in float16 (cast back to float32 on load): {', '.join(f'`{n}`' for n in halved) or 'nothing'}.
- largest differences to the full-precision checkpoint on 256 demo windows / reference states:
  latent {precision['latent_max_abs_diff']:.2e}, action {precision['action_max_abs_diff']:.2e},
  discriminator logit {precision['disc_logit_max_abs_diff']:.2e}.

## Evaluation (commit `{prov['commit']}`, {prov['wall_time_s']} s)
Per clip: encode the clip's first 2 s, start in its first frame, act deterministically on that latent for
min(5 s, max(duration, 2 s)); survival until the fall termination; body errors against the clip at the same
times (global: world frame; local: root-relative in the heading frame); discriminator on the agent's 10-frame
windows. Baseline: an untrained controller of the same size. Files: `{_rel(eval_paths[0])}`,
`{_rel(eval_paths[1])}`.

Means over clips:

{_table(summary)}

Held-out learning signals (`learning_signals`, 32 hybrid starts on random clip latents, 5 s cap; 512 demo windows):

{_table(pd.DataFrame(signals_rows))}

Per clip:

{_table(per_clip)}

## Known limitations
- Budget: {info['samples']:,} samples is {100 * info['samples'] / REFERENCE_SAMPLES:.2g} % of the reference training; expect short
  survival and weak pose imitation. Whether different latents select distinct skills is not measured here.
- Held-out discriminator accuracy {signals['trained']['disc_accuracy']:.2f} (demo {signals['trained']['disc_demo_accuracy']:.2f},
  agent {signals['trained']['disc_agent_accuracy']:.2f}): the closer to 1, the smaller the style reward the policy
  learns from (mean {summary.loc[summary.controller == 'trained', 'style_reward'].item():.3f} per step in the evaluation).
- Bundled data only: {len(info['clips'])} clips ({info['total_motion_s']} s) — 6 CMU-derived AMP clips, 2 retargeted
  CMU BVH clips and 10 authored gestures (keyframed, not motion capture).
- MuJoCo physics (implicit PD, 120 Hz) instead of Isaac Gym/PhysX: behaviour differs from the paper's humanoid
  even at equal training.
- Float16 storage of the tensors listed above (differences given above).
- Resuming from this file is not exact (no optimiser state, no replay buffer); resume from the run's own
  checkpoints for that.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", default=str(ROOT / "runs" / "llc_laptop"))
    parser.add_argument("--out", default=str(ROOT / "anyskill" / "checkpoints" / "llc_laptop.pth"))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--eval-root", default=str(ROOT), help="folder receiving results/ and figures/")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    from anyskill.llc import load_llc
    from anyskill.llc.evaluate import evaluate_llc, learning_signals, untrained_llc
    from anyskill.llc.train import latest_checkpoint, load_motions
    from anyskill.provenance import Provenance
    from anyskill.viz.llc_eval import plot_llc_eval

    run_dir = Path(args.run_dir)
    info = json.loads((run_dir / "train_info.json").read_text())
    source = latest_checkpoint(run_dir)
    state = torch.load(source, map_location="cpu", weights_only=False)
    stripped, halved = strip_checkpoint(state)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(stripped, out)
    size_mb = out.stat().st_size / 1e6
    if out.stat().st_size >= 16 * 10**6:  # MB as the package limit counts them
        raise SystemExit(f"{out} is {size_mb:.1f} MB, over the 16 MB limit")
    print(f"{source.name} (epoch {state['epoch']}) -> {out} ({size_mb:.1f} MB; float16: {halved or 'none'})")
    info.update(logged_epochs=info.get("epochs"), epochs=int(state["epoch"]), samples=int(state["frame"]))

    lib, _ = load_motions(info["manifest"])
    prov = Provenance("scripts/finish_laptop_llc.py", config={"checkpoint": _rel(out),
                                                              "source": source.name, "seconds": args.seconds},
                      seed=0)
    precision = precision_check(source, out, lib)
    df = evaluate_llc(out, motion_lib=lib, seconds=args.seconds, baseline=True)
    trained = load_llc(out)
    signals = {"trained": learning_signals(trained, lib), "untrained": learning_signals(untrained_llc(trained), lib)}
    prov.finish()

    import matplotlib

    matplotlib.use("Agg")
    csv = prov.write_csv(df, Path(args.eval_root) / "results" / "llc_laptop_eval.csv")
    png = prov.save_figure(plot_llc_eval(df), Path(args.eval_root) / "figures" / "llc_laptop_eval.png")
    from anyskill.viz.training import read_tensorboard

    curves = out.with_name(out.stem + "_curves.csv")  # learning curves for notebook 02
    read_tensorboard(run_dir).to_csv(curves)
    card = model_card(info, source, out, size_mb, halved, precision, df, signals, prov.as_dict(), (csv, png))
    out.with_suffix(".md").write_text(card)
    print(f"wrote {csv}, {png}, {curves} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
