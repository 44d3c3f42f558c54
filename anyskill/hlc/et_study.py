"""``anyskill et-study``: which early termination lets a high-level policy reach a pose goal on the shipped controller.

The paper resets an env "with an 80% probability following eight successive reductions in CLIP similarity"; read as
a termination (no value bootstrap, our default), it costs the policy the rest of the episode's reward, and Eq. 3's
reward is positive, so a policy that avoids eight successive decreases (e.g. by holding a mediocre pose) earns more
than one that reaches the goal and drifts past it. The authors' code never ends an episode on similarity (facts
§3.4: its counter only decides whether a fallen env may recover). This study trains π_H on pose goals
(:class:`~anyskill.hlc.pose_goal.PoseGoal`, the middle frame of a clip: no CLIP, a measurable optimum) under each
named early termination of :data:`anyskill.config.reward.EARLY_TERMINATIONS` and measures the mean pose error (m)
of 8 deterministic 2-s rollouts from standing, untrained vs trained (as ``anyskill compare-llc-pose`` does).

Each finished run is merged into ``--out`` at once (a lock file beside it guards it, so several processes can share
it; the file is replaced whole, never left half-written); a run given again (same clip, early termination, seed, size,
controller and evaluation length) replaces its row, others stay, and every row names the commit and time that
measured it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyskill.provenance import REPO_ROOT

if TYPE_CHECKING:
    import pandas as pd

KEY = ["goal_clip", "early_termination", "seed", "epochs", "envs", "llc", "eval_seconds"]
"""Columns that identify a run; a run measured again replaces the row with the same key."""
DEFAULT_OUT = REPO_ROOT / "results" / "early_termination_pose_goals.csv"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``'s lock file (``<path>.lock``, beside it; POSIX only)."""
    import fcntl

    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def study_early_termination(out: str | Path = DEFAULT_OUT, clips: tuple[str, ...] = ("authored_raise_both_arms",),
                            variants: tuple[str, ...] = ("paper", "truncate", "falls-only"),
                            seeds: tuple[int, ...] = (0,), epochs: int | None = None, envs: int | None = None,
                            llc: str | Path | None = None, eval_seconds: float = 2.0) -> pd.DataFrame:
    """Train and measure every (clip, variant, seed) at ``epochs`` x ``envs`` (default: the ``laptop`` profile's;
    its PPO otherwise) on the controller ``llc`` (default: the shipped one); returns the whole file at ``out`` after
    the last merge (module docstring).

    Per row: pose error untrained / trained (m); the training's mean goal similarity over its first and last 10
    epochs and at its best epoch; similarity resets per epoch over the last 10; wall time (training and both
    evaluations, s); commit and start."""
    import pandas as pd
    import torch

    from anyskill.config import profile
    from anyskill.config.hlc import HLCEnvConfig
    from anyskill.config.reward import EARLY_TERMINATIONS
    from anyskill.hlc.goal_spec import find_clip
    from anyskill.hlc.pose_comparison import train_and_evaluate
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.llc.shipped import shipped_llc
    from anyskill.provenance import git_commit

    unknown = [v for v in variants if v not in EARLY_TERMINATIONS]
    if unknown:
        raise ValueError(f"unknown early termination {unknown}; choose from {list(EARLY_TERMINATIONS)}")
    goals = {clip: PoseGoal.from_clip(find_clip(clip)) for clip in clips}  # fails on a bad clip before any training
    laptop = profile("laptop").hlc
    epochs, envs = epochs or laptop.ppo.max_epochs, envs or laptop.num_envs
    path = Path(llc) if llc is not None else shipped_llc()
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.is_file():
        raise FileNotFoundError(f"no controller checkpoint at {path}")
    llc_name = str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)
    torch.set_num_threads(1)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    commit = git_commit()
    df = pd.DataFrame()
    for clip, goal in goals.items():
        for variant in variants:
            for seed in seeds:
                started = datetime.now(timezone.utc).isoformat(timespec="seconds")
                t0 = time.time()
                env_config = HLCEnvConfig(early_termination=EARLY_TERMINATIONS[variant])
                run, before, after = train_and_evaluate(goal, path, epochs, envs, seed, env_config, eval_seconds)
                sim = [s["similarity"] for s in run.epoch_stats]
                resets = [s["et_similarity_resets"] for s in run.epoch_stats[-10:]]
                row: dict[str, Any] = {
                    "goal_clip": clip, "early_termination": variant, "seed": seed, "epochs": epochs, "envs": envs,
                    "llc": llc_name, "eval_seconds": eval_seconds,
                    "pose_error_untrained_m": before.mean_pose_error, "pose_error_trained_m": after.mean_pose_error,
                    "similarity_first10": sum(sim[:10]) / len(sim[:10]), "similarity_best": max(sim),
                    "similarity_last10": sum(sim[-10:]) / len(sim[-10:]),
                    "similarity_resets_last10": sum(resets) / len(resets), "wall_s": round(time.time() - t0, 1),
                    "commit": commit, "started": started}
                print(json.dumps(row), flush=True)
                df = merge_row(out, row)
    return df


def merge_row(out: Path, row: dict[str, Any]) -> pd.DataFrame:
    """Put ``row`` into the CSV at ``out`` under its lock, replacing a row with the same :data:`KEY`; the file is
    written beside and moved over ``out``, so a reader never sees it half-written. Returns the merged table."""
    import pandas as pd

    from anyskill.provenance import Provenance

    new = pd.DataFrame([row])
    with _locked(out):
        if out.is_file():
            old = pd.read_csv(out, comment="#")
            same = pd.Series(True, index=old.index)
            for key in KEY:
                if isinstance(row[key], str):
                    same &= old[key].astype(str) == row[key]
                else:
                    same &= pd.to_numeric(old[key], errors="coerce") == row[key]
            new = pd.concat([old[~same], new], ignore_index=True)
        df = new.sort_values(KEY, ignore_index=True)
        prov = Provenance("anyskill et-study", config={"rows": "each row names its commit, start and controller"},
                          clip_weights="none (pose goals)")
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        prov.finish().write_csv(df, tmp)
        os.replace(tmp, out)
    return df


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (epochs, envs, clip, variant): the seeds, the trained pose error (m) per seed (in seed order) and its
    mean, the untrained policies' mean (m)."""
    g = df.sort_values("seed").groupby(["epochs", "envs", "goal_clip", "early_termination"])
    return g.agg(seeds=("seed", lambda x: ",".join(str(int(v)) for v in x)),
                 trained_per_seed=("pose_error_trained_m", lambda x: "/".join(f"{v:.3f}" for v in x)),
                 trained_mean_m=("pose_error_trained_m", "mean"),
                 untrained_mean_m=("pose_error_untrained_m", "mean")).reset_index()


def _study(args: argparse.Namespace) -> int:
    df = study_early_termination(args.out, tuple(args.clips), tuple(args.variants), tuple(args.seeds), args.epochs,
                                 args.envs, args.llc, args.eval_seconds)
    print(summary(df).to_string(index=False))
    print(f"-> {args.out}")
    return 0


def add_et_study_command(sub) -> None:
    """Register ``et-study`` on the ``anyskill`` parser's sub-parsers."""
    from anyskill.config import profile
    from anyskill.config.reward import EARLY_TERMINATIONS
    from anyskill.hlc.pose_comparison import CLIPS

    c = sub.add_parser("et-study", help="train high-level policies on pose goals under each early termination "
                       "(paper / truncate / falls-only) and compare their pose errors",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("--clips", nargs="+", default=["authored_raise_both_arms"], metavar="CLIP",
                   help=f"goal clips (their middle frame), e.g. {' '.join(CLIPS)}")
    c.add_argument("--variants", nargs="+", choices=list(EARLY_TERMINATIONS), default=list(EARLY_TERMINATIONS))
    c.add_argument("--seeds", nargs="+", type=int, default=[0])
    laptop = profile("laptop").hlc
    c.add_argument("--epochs", type=int, help=f"default: the laptop profile's ({laptop.ppo.max_epochs})")
    c.add_argument("--envs", type=int, help=f"default: the laptop profile's ({laptop.num_envs})")
    c.add_argument("--llc", help="controller checkpoint (default: the shipped one)")
    c.add_argument("--eval-seconds", type=float, default=2.0, help="deterministic rollout per evaluation, s")
    c.add_argument("--out", type=Path, default=DEFAULT_OUT)
    c.set_defaults(func=_study)
