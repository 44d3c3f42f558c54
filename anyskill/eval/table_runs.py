"""The trainings behind the paper's Tables 1-3, as the table notebooks (07-09) set them up, and one at a time from the
command line (``anyskill table-task``: a SLURM job array runs one training per array index, without Ray).

The notebooks and the command share everything that decides a training — the models (:func:`table_models`), the
method context (:func:`table_context`) and the task list (:func:`table_tasks`) — and the command reads the
notebook's own parameter defaults (prompts, enhancer, reward source, ...), so a training done by the command is
the notebook's training: the notebook run afterwards finds its record (``task.json``) in the same run folder, reuses
it and only assembles the table.

    anyskill table-task --table 1 --scale paper --out OUT --list            # the trainings, one per line: index, name
    anyskill table-task --table 1 --scale paper --out OUT --index 3         # run training 3 into OUT/runs/...
    anyskill reproduce --scale paper --only 07 --out OUT                   # then: the table, from the records
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from anyskill.config import profile
from anyskill.config.hlc import ANCHOR_SCALE, LATENT_ACTIONS
from anyskill.eval.kinematic import KinematicSettings
from anyskill.eval.methods import TABLE_METHODS, MethodContext, MethodTask, method_tasks, run_method_tasks
from anyskill.hlc.clip_goals import RewardSource
from anyskill.provenance import REPO_ROOT

TABLE_NOTEBOOKS = {1: "07_table1", 2: "08_table2", 3: "09_table3"}


def table_models(scale: str, seed: int = 0, device: str = "cpu", llc_checkpoint: str = "", clip_weights: str = "",
                 enhance: str = "offline") -> tuple[Path, Any, Any, Any]:
    """(controller checkpoint, CLIP model, renderer, enhancer) of a table notebook's parameters: the shipped
    controller unless one is given; pretrained CLIP when found, else the domain model (``clip_weights`` empty)."""
    import torch

    import anyskill.sim.render as render  # before open_clip: load torchvision ahead of the EGL context
    from anyskill.domain import choose_clip_weights
    from anyskill.humanoid.model import load_humanoid
    from anyskill.llc.shipped import shipped_llc
    from anyskill.reward.clip_model import ClipModel, ClipSpec
    from anyskill.text import make_enhancer

    llc_ckpt = Path(llc_checkpoint) if llc_checkpoint else shipped_llc()
    weights = choose_clip_weights(clip_weights, scale)
    torch.manual_seed(seed)  # random CLIP weights (smoke) are drawn from torch's generator: same seed, same weights
    clip_model = ClipModel(ClipSpec(weights=weights, device=device))
    renderer = render.StateRenderer(load_humanoid().mj_model(), render.CameraSpec())
    return llc_ckpt, clip_model, renderer, make_enhancer(enhance)


def table_context(llc_ckpt: Path, clip_model: Any, renderer: Any, enhancer: Any, scale: str, seed: int = 0,
                  device: str = "cpu", reward_source: str = "projection", scenes: tuple[str, ...] = (),
                  on_status: Callable[[str], None] | None = print, latent_action: str = "free",
                  anchor_scale: float = ANCHOR_SCALE) -> MethodContext:
    """The method context of a table: with ``reward_source`` "projection" the calibrated state projection (from
    the cache, or calibrated now) of the humanoid, or of each of ``scenes`` (Table 2); the scale's sizes; every π_H
    acting through ``latent_action`` (σ ``anchor_scale`` when anchored)."""
    from anyskill.hlc.projection_cache import calibrated_projection
    from anyskill.llc import load_llc

    say = on_status or (lambda text: None)
    sizes = profile(scale).notebooks
    projection, scene_projections = None, {}
    if reward_source == "projection":
        for scene in scenes or (None,):
            calibration = calibrated_projection(clip_model, llc_ckpt, scene=scene, scale=scale, on_status=on_status)
            say(calibration.summary())
            if scene is None:
                projection = calibration.projection
            else:
                scene_projections[scene] = calibration.projection
    return MethodContext(llc_checkpoint=llc_ckpt, llc=load_llc(llc_ckpt), clip_model=clip_model, renderer=renderer,
                         enhancer=enhancer, reward_source=cast(RewardSource, reward_source),
                         projection=projection, scale=scale, seed=seed, device=device,
                         render_interval=5 if scale == "smoke" else 1, scene_projections=scene_projections,
                         kinematic=KinematicSettings(population=sizes.kinematic_population,
                                                     elites=max(2, sizes.kinematic_population // 4),
                                                     iterations=sizes.kinematic_iterations),
                         latent_action=latent_action, anchor_scale=anchor_scale)


def table_prompts(table: int, prompts: list[str] | dict[str, str], scale: str) -> list[str] | dict[str, str]:
    """The prompts a table trains on: Tables 1 and 3 the first ``table_prompts`` of the scale, Table 2 every scene's
    instruction (scene -> prompt)."""
    if table == 2:
        if not isinstance(prompts, dict):
            raise ValueError("Table 2's prompts map each scene to its instruction")
        return dict(prompts)
    return list(prompts)[: profile(scale).notebooks.table_prompts]


def table_tasks(table: int, prompts: list[str] | dict[str, str], runs: str | Path, scale: str) -> list[MethodTask]:
    """The table's trainings, in the notebook's order and run folders (``runs/table<t>_<scale>/...``): Tables 1 and 3
    every method of :data:`TABLE_METHODS` on every chosen prompt; Table 2 "Ours (full)" in every scene."""
    sizes = profile(scale).notebooks
    chosen = table_prompts(table, prompts, scale)
    root = Path(runs) / f"table{table}_{scale}"
    if isinstance(chosen, dict):
        return [task for scene, prompt in chosen.items()
                for task in method_tasks(("ours_full",), [prompt], root / scene, sizes.table_rollout_seconds,
                                         sizes.table_clip_stride, scene=scene)]
    return method_tasks(TABLE_METHODS[table], chosen, root, sizes.table_rollout_seconds, sizes.table_clip_stride)


def notebook_defaults(table: int) -> dict[str, Any]:
    """The parameter defaults of the table's notebook (its ``parameters`` cell), as Python values."""
    import papermill as pm

    path = REPO_ROOT / "notebooks" / f"{TABLE_NOTEBOOKS[table]}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: anyskill table-task reads the notebook's parameters from a "
                                "checkout of the repository")
    return {name: ast.literal_eval(p["default"]) for name, p in pm.inspect_notebook(str(path)).items()}


def _table_task(args: argparse.Namespace) -> int:
    defaults = notebook_defaults(args.table)
    given = {"llc_checkpoint": args.llc, "clip_weights": args.clip_weights, "enhance": args.enhance,
             "reward_source": args.reward_source, "latent_action": args.latent_action,
             "anchor_scale": args.anchor_scale}
    p = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    out = Path(args.out)
    tasks = table_tasks(args.table, p["prompts"], out / "runs", args.scale)
    if args.list or args.index is None:
        for i, task in enumerate(tasks):
            print(f"{i}\t{task.name}")
        return 0
    if not 0 <= args.index < len(tasks):
        raise ValueError(f"--index must be in 0..{len(tasks) - 1} (Table {args.table} at {args.scale}: "
                         f"{len(tasks)} trainings; --list names them)")
    import torch

    torch.set_num_threads(args.threads)
    llc_ckpt, clip_model, renderer, enhancer = table_models(args.scale, args.seed, args.device, p["llc_checkpoint"],
                                                            p["clip_weights"], p["enhance"])
    scenes = tuple(p["prompts"]) if args.table == 2 else ()
    ctx = table_context(llc_ckpt, clip_model, renderer, enhancer, args.scale, args.seed, args.device,
                        p["reward_source"], scenes, latent_action=p["latent_action"],
                        anchor_scale=p["anchor_scale"])
    task = tasks[args.index]
    rows, _ = run_method_tasks([task], ctx, retries=0)
    print(f"task {args.index} ({task.name}) finished: {task.out_dir / 'task.json'}")
    print({k: v for k, v in rows[0].items() if k in ("method", "prompt", "clip_s", "fell")})
    return 0


def add_table_task_command(sub) -> None:
    """Register ``table-task`` on the ``anyskill`` parser's sub-parsers."""
    t = sub.add_parser("table-task", help="run one training of a paper table (07-09) by its index, e.g. one element "
                       "of a SLURM job array; the notebook then reuses it")
    t.add_argument("--table", type=int, choices=sorted(TABLE_NOTEBOOKS), required=True)
    t.add_argument("--scale", default="smoke", choices=("smoke", "laptop", "paper"))
    t.add_argument("--out", default="outputs/smoke", help="the --out folder of `anyskill reproduce` (runs go to "
                   "OUT/runs/table<t>_<scale>/...)")
    t.add_argument("--index", type=int, help="which training (0-based; e.g. $SLURM_ARRAY_TASK_ID)")
    t.add_argument("--list", action="store_true", help="list the trainings (index and name) and exit")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default="cpu")
    t.add_argument("--threads", type=int, default=1, help="torch threads of this training")
    t.add_argument("--llc", help="controller checkpoint (default: the notebook's, i.e. the shipped one)")
    t.add_argument("--clip-weights", help="default: the notebook's")
    t.add_argument("--enhance", choices=("llm", "offline", "none"), help="default: the notebook's")
    t.add_argument("--reward-source", choices=("projection", "render"), help="default: the notebook's")
    t.add_argument("--anchor-scale", type=float, help="σ of anchored latent actions (default: the notebook's)")
    t.add_argument("--latent-action", choices=LATENT_ACTIONS, help="how π_H's action becomes a latent (default: the "
                   "notebook's)")
    t.set_defaults(func=_table_task)
