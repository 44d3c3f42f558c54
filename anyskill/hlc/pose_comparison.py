"""``anyskill compare-llc-pose``: one level up, high-level policies on pose goals of 5 clips, on each low-level
controller, before vs after training.

For each clip (its middle frame is the goal, :class:`anyskill.hlc.pose_goal.PoseGoal`) and each controller (the shipped
tracking-route controller and the CALM one it replaced) trains π_H at the ``laptop`` profile with fewer epochs and envs
(the numbers are in the output's provenance), then measures the mean pose error (m) of 8 deterministic 2-s rollouts
from standing for the untrained and the trained policy. Writes ``results/llc_hlc_pose_goals.csv``, which the shipped
controller's model card (``anyskill ship-llc``) embeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from anyskill.provenance import REPO_ROOT

if TYPE_CHECKING:
    import pandas as pd

    from anyskill.config.hlc import HLCEnvConfig
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.hlc.rollout import Evaluation
    from anyskill.rl.runner import TrainResult

CLIPS = ("authored_raise_both_arms", "authored_squat", "authored_bow", "authored_kick", "authored_wave_right_hand")
CONTROLLERS = {"tracking route (shipped)": "anyskill/checkpoints/llc_laptop.pth",
               "CALM (previous)": "anyskill/checkpoints/llc_calm_laptop.pth"}
"""Label -> checkpoint, relative to the repository unless absolute."""


def compare_on_pose_goals(out: str | Path, controllers: dict[str, str] | None = None, clips: tuple[str, ...] = CLIPS,
                          epochs: int = 60, envs: int = 32, seed: int = 0, eval_seconds: float = 2.0,
                          keep_others: bool = False, latent_action: str = "free",
                          anchor_scale: float | None = None, relabel: dict[str, str] | None = None) -> pd.DataFrame:
    """Pose error of the untrained and the trained π_H per clip and controller (module docstring), written to ``out``
    with its provenance. ``keep_others``: rows of other (controller, latent action) pairs are kept from an existing
    ``out`` (rows written before the column existed are "free"); ``anchor_scale``: σ of anchored actions (None: the
    default, :data:`anyskill.config.hlc.ANCHOR_SCALE`), named in the latent_action column when it is not the default;
    ``relabel``: old controller label -> new one for the kept rows (e.g. when the shipped controller is replaced).
    The provenance names, for every kept (controller, latent action) group, the commit and start of the run that
    wrote it (:func:`row_sources`)."""
    import pandas as pd
    import torch

    from anyskill.config.hlc import ANCHOR_SCALE, HLCEnvConfig
    from anyskill.hlc.goal_spec import find_clip
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.provenance import Provenance

    torch.set_num_threads(1)
    out = Path(out)
    controllers = dict(controllers or CONTROLLERS)
    env_config = HLCEnvConfig(latent_action=latent_action, anchor_scale=anchor_scale or ANCHOR_SCALE)
    if latent_action != "free" and anchor_scale not in (None, ANCHOR_SCALE):
        latent_action = f"{latent_action} (σ {anchor_scale:g})"
    prov = Provenance("anyskill compare-llc-pose", config={"epochs": epochs, "envs": envs, "clips": clips,
                                                           "controllers": controllers, "latent_action": latent_action,
                                                           "anchor_scale": env_config.anchor_scale},
                      seed=seed, clip_weights="none (pose goals)")
    rows = []
    for clip in clips:
        goal = PoseGoal.from_clip(find_clip(clip))
        for label, ckpt in controllers.items():
            path = REPO_ROOT / ckpt
            t0 = time.time()
            _, before, after = train_and_evaluate(goal, path, epochs, envs, seed, env_config, eval_seconds)
            rows.append({"goal_clip": clip, "controller": label, "latent_action": latent_action,
                         "pose_error_untrained_m": before.mean_pose_error,
                         "pose_error_trained_m": after.mean_pose_error, "train_s": round(time.time() - t0, 1)})
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    if keep_others and out.is_file():
        old = pd.read_csv(out, comment="#")
        if "latent_action" not in old:
            old.insert(2, "latent_action", "free")
        header = [ln[2:].strip() for ln in out.read_text().splitlines() if ln.startswith("# ")]
        sources = row_sources(header)
        if relabel:
            old["controller"] = old["controller"].replace(relabel)
            sources = {_relabel_group(g, relabel): v for g, v in sources.items()}
            prov.config["relabelled"] = dict(relabel)
        kept = old[~(old["controller"].isin(list(controllers)) & (old["latent_action"] == latent_action))]
        groups = sorted({f"{c}, {a}" for c, a in zip(kept["controller"], kept["latent_action"], strict=True)})
        prov.config["kept_rows_from"] = {g: sources.get(g, {"source": "unknown"}) for g in groups}
        df = pd.concat([kept, df], ignore_index=True)
    prov.finish().write_csv(df, out)
    return df


def train_and_evaluate(goal: PoseGoal, llc: Path, epochs: int, envs: int, seed: int, env_config: HLCEnvConfig,
                       eval_seconds: float) -> tuple[TrainResult, Evaluation, Evaluation]:
    """Train π_H toward ``goal`` on the controller at ``llc`` (``laptop`` PPO, ``epochs`` x ``envs``, in a temporary
    folder) and evaluate its untrained and trained policies (8 deterministic ``eval_seconds``-s rollouts from
    standing): (the run, whose checkpoints are gone, before, after)."""
    from anyskill.hlc.rollout import evaluate
    from anyskill.hlc.train import train_hlc

    with tempfile.TemporaryDirectory() as tmp:
        run = train_hlc(goal, llc, scale="laptop", out_dir=tmp, seed=seed, num_envs=envs, max_epochs=epochs,
                        env_config=env_config, progress=False)
        assert run.initial_checkpoint is not None  # train_hlc always writes it
        before = evaluate(run.initial_checkpoint, llc, goal, seconds=eval_seconds, seed=seed)
        after = evaluate(run.checkpoint, llc, goal, seconds=eval_seconds, seed=seed)
    return run, before, after


def row_sources(header: list[str]) -> dict[str, dict]:
    """Where each "controller, latent action" row group of a written comparison came from ({commit, started,
    checkpoint}), from the file's provenance header lines; the nested headers of older files are unfolded."""
    import json

    h = dict(line.partition(": ")[::2] for line in header)
    config = json.loads(h.get("config") or "{}")
    kept = config.get("kept_rows_from") or {}
    sources: dict[str, dict] = {}
    if "provenance" in kept:  # older files: the previous file's whole header, nested
        rows = kept.get("rows") or [f"{c}, free" for c in kept.get("controllers", [])]
        older = row_sources(kept["provenance"])
        sources.update({g: older[g] for g in rows if g in older})
    else:
        sources.update(kept)
    for label, path in config.get("controllers", {}).items():
        sources[f"{label}, {config.get('latent_action', 'free')}"] = {"commit": h.get("commit"),
                                                                    "started": h.get("started"), "checkpoint": path}
    return sources


def _relabel_group(group: str, relabel: dict[str, str]) -> str:
    controller, _, action = group.rpartition(", ")
    return f"{relabel.get(controller, controller)}, {action}"


def _compare(args: argparse.Namespace) -> int:
    controllers = {k: v for k, v in CONTROLLERS.items() if args.only is None or args.only in k.lower()}
    if args.controller:
        pairs = [item.partition("=") for item in args.controller]
        if any(not (label and sep and path) for label, sep, path in pairs):
            raise ValueError(f"--controller takes LABEL=CHECKPOINT, got {args.controller}")
        controllers = {label: path for label, _, path in pairs}
    df = compare_on_pose_goals(args.out, controllers, tuple(args.clips), args.epochs, args.envs, args.seed,
                               args.eval_seconds, keep_others=bool(args.only or args.controller or args.keep),
                               latent_action=args.latent_action, anchor_scale=args.anchor_scale,
                               relabel=dict(item.split("=", 1) for item in args.relabel or []))
    print(df.groupby(["controller", "latent_action"])[["pose_error_untrained_m", "pose_error_trained_m"]].mean())
    print(f"-> {args.out}")
    return 0


def add_compare_command(sub) -> None:
    """Register ``compare-llc-pose`` on the ``anyskill`` parser's sub-parsers."""
    from anyskill.config.hlc import LATENT_ACTIONS

    c = sub.add_parser("compare-llc-pose", help="train high-level policies on pose goals of 5 clips on each low-level "
                       "controller and compare their pose errors before and after",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--epochs", type=int, default=60)
    c.add_argument("--envs", type=int, default=32)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "llc_hlc_pose_goals.csv")
    c.add_argument("--only", choices=["calm", "tracking"], help="run one controller, keep the other's rows in --out")
    c.add_argument("--controller", action="append", metavar="LABEL=CHECKPOINT",
                   help="compare these controllers instead (repeatable); rows of others in --out are kept")
    c.add_argument("--clips", nargs="+", default=list(CLIPS), help="goal clips (their middle frame)")
    c.add_argument("--latent-action", choices=LATENT_ACTIONS, default="free",
                   help="how π_H's action becomes a latent: free (the paper's) or anchored on the latent prior")
    c.add_argument("--anchor-scale", type=float, help="σ of anchored actions (default: the env's)")
    c.add_argument("--keep", action="store_true", help="keep the rows of other controllers and latent actions in --out")
    c.add_argument("--relabel", action="append", metavar="OLD=NEW",
                   help="rename a controller's kept rows (repeatable), e.g. when the shipped controller is replaced")
    c.add_argument("--eval-seconds", type=float, default=2.0, help="deterministic rollout per evaluation, s")
    c.set_defaults(func=_compare)
