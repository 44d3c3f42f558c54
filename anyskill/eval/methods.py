"""The methods of the paper's Tables 1–3 as named options of one pipeline (no copies of it): each :class:`Method`
says what differs from "Ours (full)" — the text (enhanced or not), early termination, the per-frame score of the
reward (:mod:`anyskill.hlc.variant_goals`), a velocity term — or that it is the kinematic baseline
(:mod:`anyskill.eval.kinematic`).

    run = train_method(METHODS["ours_no_et"], "kick", ctx, out_dir="runs/table1/kick/ours_no_et")
    result = rollout_method(run, ctx, seconds=2.0)
    row = measure(run, result, ctx.clip_model, clip_stride=3)   # CLIP_S against the original prompt + physics
    register_study(RatingStore("study.sqlite"), {("ours_no_et", "kick"): result}, "videos")  # for the raters

A table's trainings (methods x prompts, each seeded by the context) are independent :class:`MethodTask` s, run by an
executor (:mod:`anyskill.eval.executor`): in this process, or as Ray tasks on a local Ray or a cluster. Each task
writes its run into its own folder ``runs_dir/prompt<i>/<key>`` with ``task.json`` (its table row, what it was run
with and its provenance: commit, machine, wall time) and ``rollout.pkl``; a task whose folder already holds the
record of the same task is not run again, so after a failure only the failed tasks run again::

    rows, rollouts = compare_methods(TABLE_METHODS[1], prompts, ctx, "runs/table1", executor=make_executor("ray"))
"""

from __future__ import annotations

import json
import os
import pickle
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from anyskill.config.hlc import ANCHOR_SCALE, HLCEnvConfig
from anyskill.config.reward import EarlyTerminationConfig, RewardConfig
from anyskill.eval.executor import Executor, InProcess, TaskFailure
from anyskill.eval.kinematic import FPS, KinematicSettings, optimise_kinematic
from anyskill.eval.kinematic import LABEL as KINEMATIC_LABEL
from anyskill.eval.ratings import RatingStore, StudyItem
from anyskill.eval.rollout_metrics import rollout_metrics
from anyskill.hlc.clip_goals import RewardSource, TextGoal
from anyskill.hlc.goal import Goal
from anyskill.hlc.rollout import RolloutResult, rollout
from anyskill.hlc.train import train_hlc
from anyskill.hlc.variant_goals import FrameScore, VariantGoal
from anyskill.llc.controller import LowLevelController
from anyskill.provenance import Provenance, git_commit
from anyskill.reward.clip_model import ClipModel
from anyskill.reward.projection import StateProjection
from anyskill.rl.runner import TrainResult
from anyskill.sim.render import StateRenderer, write_video
from anyskill.sim.scene import get_scene
from anyskill.text.enhancer import TextEnhancer, enhancer_provenance


@dataclass(frozen=True)
class Method:
    """One compared method. ``label``: its name in our tables; ``paper_row``: its row in the paper's table (None: not
    in the paper); ``enhance``: train on the enhanced text (§4.3); ``early_termination``; ``frame_score``: a
    Table 3 / VideoCLIP score in place of cos (None: Eq. 3's cos); ``w_velocity``: weight of the ASE-style velocity
    term; ``kind``: "hierarchy" (π_H on the frozen LLC, physics) or "kinematic" (CEM over poses, no physics)."""

    key: str
    label: str
    paper_row: str | None
    description: str
    kind: Literal["hierarchy", "kinematic"] = "hierarchy"
    enhance: bool = True
    early_termination: EarlyTerminationConfig = field(default_factory=EarlyTerminationConfig)
    frame_score: FrameScore | None = None
    w_velocity: float = 0.0


VELOCITY_WEIGHT = 0.1
"""w_v of "+ vel. rew.": the weight of the velocity term in the authors' environment (facts §3.2)."""

METHODS: dict[str, Method] = {m.key: m for m in (
    Method("ours_full", "Ours (full)", "Ours (full)",
           "Eq. 3 on the enhanced text, early termination (8 successive decreases, head below 0.15 m)"),
    Method("ours_no_et", "Ours (w/o ET)", "Ours (w/o ET)", "as full, without either early-termination rule",
           early_termination=EarlyTerminationConfig(mode="off", head_rule=False)),
    Method("ours_no_enhance", "Ours (w/o text-enhance)", "Ours (w/o text-enhance)",
           "as full, trained on the original instruction", enhance=False),
    Method("ours_videoclip", "Ours (w/ mean-pooled features, VideoCLIP-style)", "Ours (w/ VideoCLIP [56])",
           "as full, the frame features of the last 15 frames (0.5 s) mean-pooled before the cosine",
           frame_score="mean_pooled"),
    Method("kinematic", KINEMATIC_LABEL, None,
           "CEM over 4 pose keyframes of the same humanoid scored by rendered CLIP similarity; no physics",
           kind="kinematic"),
    Method("vlm_rm", "VLM-RMs (goal-baseline projection, alpha 0.5)", "VLM-RMs [37]",
           "1 - 0.5 ||(x - g)P||^2, P = a d d^T + (1 - a) I, d from 'a humanoid robot' to the goal, a = 0.5",
           frame_score="vlm_rm"),
    Method("clip_s", "CLIP-S (2.5 max(cos, 0))", "CLIP-S [69]", "CLIPScore 2.5 max(cos, 0) in place of cos",
           frame_score="clip_s"),
    Method("avgpool", "AvgPool (cos averaged over 15 frames)", "AvgPool [56]",
           "the cosine averaged over the last 15 frames (0.5 s)", frame_score="avgpool"),
    Method("velocity", "+ vel. rew. (ASE-style)", "+ vel. rew. [32]",
           "Eq. 3 + 0.1 exp(-0.25 (0.2 - v.x)^2), the root's speed along +x against 0.2 m/s",
           w_velocity=VELOCITY_WEIGHT),
)}
TABLE_METHODS: dict[int, tuple[str, ...]] = {
    1: ("kinematic", "ours_no_et", "ours_no_enhance", "ours_videoclip", "ours_full"),
    3: ("vlm_rm", "clip_s", "avgpool", "velocity", "ours_full"),
}


@dataclass
class MethodContext:
    """What every method shares: the frozen LLC, CLIP, the renderer, the enhancer, the reward source (a trained
    state projection, or rendering) and the training budget."""

    llc_checkpoint: Path
    llc: LowLevelController
    clip_model: ClipModel
    renderer: StateRenderer
    enhancer: TextEnhancer
    reward_source: RewardSource = "render"
    projection: StateProjection | None = None
    scale: str = "smoke"
    seed: int = 0
    device: str = "cpu"
    max_epochs: int | None = None
    num_envs: int | None = None
    """parallel envs of each training run (None: the scale profile's)."""
    render_interval: int = 1
    """in a scene: render + encode the reward's frame every k-th LLC step (when it has no projection)."""
    scene_projections: dict[str, StateProjection] = field(default_factory=dict)
    """scene name -> its object-aware state projection (:func:`anyskill.hlc.projection_cache.calibrated_projection`
    with ``scene=``); a scene listed here trains on it when ``reward_source`` is "projection"."""
    kinematic: KinematicSettings = field(default_factory=KinematicSettings)
    latent_action: str = "free"
    """how each π_H's action becomes a latent (:attr:`anyskill.config.hlc.HLCEnvConfig.latent_action`): "free" is the
    paper's; "anchored" acts around the latent prior (a named departure, issue 27)."""
    anchor_scale: float = ANCHOR_SCALE
    """σ of anchored latent actions (:attr:`anyskill.config.hlc.HLCEnvConfig.anchor_scale`)."""


@dataclass
class MethodRun:
    """A trained method for one prompt: the goal it trained on (its text: ``trained_on``), the training record (None
    for the kinematic baseline) or the kinematic result."""

    method: Method
    prompt: str
    trained_on: str
    goal: Goal | None
    train: TrainResult | None = None
    kinematic: RolloutResult | None = None
    kinematic_curve: list[float] = field(default_factory=list)
    scene: str | None = None


def method_goal(method: Method, text: str, ctx: MethodContext, scene: str | None = None) -> Goal:
    """The goal ``method`` trains on for ``text``: a :class:`TextGoal`, wrapped in a :class:`VariantGoal` when the
    method scores frames differently. In an interaction ``scene``: the scene's object-aware projection when ``ctx``
    has one and the reward source is "projection", else frames rendered by the scene's camera (every
    ``ctx.render_interval``-th LLC step)."""
    if scene is None:
        goal = TextGoal(ctx.clip_model, ctx.renderer, text, ctx.reward_source, ctx.projection)
    elif ctx.reward_source == "projection" and scene in ctx.scene_projections:
        goal = TextGoal(ctx.clip_model, None, text, "projection", ctx.scene_projections[scene])
    else:
        spec = get_scene(scene)
        renderer = StateRenderer(spec.mj_model(), spec.camera)
        goal = TextGoal(ctx.clip_model, renderer, text, "render", render_interval=ctx.render_interval)
    return VariantGoal(goal, method.frame_score) if method.frame_score is not None else goal


def train_method(method: Method, prompt: str, ctx: MethodContext, out_dir: str | Path, seconds: float = 2.0,
                 scene: str | None = None) -> MethodRun:
    """Train ``method`` for ``prompt`` (in interaction ``scene``, if given) into ``out_dir``; the kinematic baseline
    optimises a ``seconds``-s motion instead."""
    text = ctx.enhancer.enhance(prompt).text if method.enhance else prompt
    if method.kind == "kinematic":
        if scene is not None:
            raise ValueError("the kinematic baseline has no physics and cannot interact with a scene")
        result, curve = optimise_kinematic(text, ctx.clip_model, ctx.renderer, seconds, ctx.kinematic, ctx.seed)
        return MethodRun(method, prompt, text, None, kinematic=result, kinematic_curve=curve)
    goal = method_goal(method, text, ctx, scene)
    env_config = HLCEnvConfig(reward=replace(RewardConfig(), w_velocity=method.w_velocity),
                              early_termination=method.early_termination, scene=scene,
                              latent_action=ctx.latent_action, anchor_scale=ctx.anchor_scale)
    train = train_hlc(goal, ctx.llc_checkpoint, scale=ctx.scale, out_dir=out_dir, seed=ctx.seed,
                      num_envs=ctx.num_envs, max_epochs=ctx.max_epochs, env_config=env_config, device=ctx.device,
                      progress=False)
    return MethodRun(method, prompt, text, goal, train=train, scene=scene)


def rollout_method(run: MethodRun, ctx: MethodContext, seconds: float = 2.0) -> RolloutResult:
    """A rendered, deterministic rollout of the trained method (the kinematic baseline: its optimised motion), seen
    by the goal's camera (in a scene: the scene's)."""
    if run.kinematic is not None:
        return run.kinematic
    assert run.train is not None and run.goal is not None
    return rollout(run.train.checkpoint, ctx.llc, run.goal, seconds=seconds, seed=ctx.seed)


def measure(run: MethodRun, result: RolloutResult, clip: ClipModel, clip_stride: int = 1) -> dict[str, object]:
    """One table row: the method, the prompt and the text it trained on, the final training similarity, and
    :func:`~anyskill.eval.rollout_metrics.rollout_metrics` (CLIP_S against the *original* prompt, on every
    ``clip_stride``-th frame)."""
    final = run.train.epoch_stats[-1]["similarity"] if run.train is not None and run.train.epoch_stats else \
        (run.kinematic_curve[-1] if run.kinematic_curve else float("nan"))
    row: dict[str, object] = {"method": run.method.key, "label": run.method.label, "prompt": run.prompt,
                              "trained_on": run.trained_on, "final_training_score": final}
    row.update(rollout_metrics(result, clip, run.prompt, clip_stride=clip_stride))
    return row


@dataclass(frozen=True)
class MethodTask:
    """One independent training of a table: method ``key`` on ``prompt`` (in interaction ``scene``), trained into
    ``out_dir``, rolled out for ``seconds`` s and measured on every ``clip_stride``-th frame."""

    key: str
    prompt: str
    out_dir: Path
    seconds: float = 2.0
    clip_stride: int = 1
    scene: str | None = None

    @property
    def name(self) -> str:
        return f"{self.key} on {self.prompt!r}" + (f" in {self.scene}" if self.scene else "") + f" ({self.out_dir})"


TASK_RECORD, TASK_ROLLOUT = "task.json", "rollout.pkl"
"""A finished task's files in its folder: the record (row, inputs, provenance) and the rollout (pickled)."""


def method_tasks(keys: tuple[str, ...], prompts: list[str], runs_dir: str | Path, seconds: float = 2.0,
                 clip_stride: int = 1, scene: str | None = None) -> list[MethodTask]:
    """Every method of ``keys`` on every prompt, prompt by prompt; runs in ``runs_dir/prompt<i>/<key>``."""
    return [MethodTask(key, prompt, Path(runs_dir) / f"prompt{i}" / key, seconds, clip_stride, scene)
            for i, prompt in enumerate(prompts) for key in keys]


def task_inputs(task: MethodTask, ctx: MethodContext) -> dict[str, Any]:
    """What a task's result depends on (a finished task is reused only when all of it is the same): the task, the
    context's settings, the controller and CLIP weights, the enhancer and the code's commit."""
    return {"method": task.key, "prompt": task.prompt, "scene": task.scene, "seconds": task.seconds,
            "clip_stride": task.clip_stride, "scale": ctx.scale, "seed": ctx.seed, "device": ctx.device,
            "max_epochs": ctx.max_epochs, "num_envs": ctx.num_envs, "reward_source": ctx.reward_source,
            "render_interval": ctx.render_interval, "latent_action": ctx.latent_action,
            **({"anchor_scale": ctx.anchor_scale} if ctx.latent_action != "free" else {}),
            "llc": str(ctx.llc_checkpoint),
            "clip_weights": ctx.clip_model.spec.description, **enhancer_provenance(ctx.enhancer),
            "commit": git_commit()}


def run_method_task(task: MethodTask, ctx: MethodContext) -> tuple[dict[str, object], RolloutResult]:
    """Train, roll out and measure one task (wherever an executor runs it); writes ``task.json`` and
    ``rollout.pkl`` into ``task.out_dir``. Returns (table row, rollout)."""
    inputs = task_inputs(task, ctx)
    prov = Provenance("anyskill.eval.methods.run_method_task", config=inputs, seed=ctx.seed, device=ctx.device,
                      clip_weights=ctx.clip_model.spec.description)
    run = train_method(METHODS[task.key], task.prompt, ctx, task.out_dir, task.seconds, task.scene)
    result = rollout_method(run, ctx, task.seconds)
    row = measure(run, result, ctx.clip_model, task.clip_stride)
    task.out_dir.mkdir(parents=True, exist_ok=True)
    with open(task.out_dir / TASK_ROLLOUT, "wb") as f:
        pickle.dump(result, f)
    record = {"provenance": prov.finish().as_dict(), "task": inputs, "row": row,
              "worker": {"host": platform.node(), "pid": os.getpid()}}
    tmp = task.out_dir / (TASK_RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=_json_value) + "\n")
    tmp.replace(task.out_dir / TASK_RECORD)  # written last: its presence means the task finished
    return row, result


def _json_value(value: object) -> object:
    return value.item() if hasattr(value, "item") else str(value)


def finished_task(task: MethodTask, ctx: MethodContext) -> tuple[dict[str, object], RolloutResult] | None:
    """The row and rollout of ``task`` from its folder when it finished there with the same inputs, else None."""
    record_path, rollout_path = task.out_dir / TASK_RECORD, task.out_dir / TASK_ROLLOUT
    if not (record_path.is_file() and rollout_path.is_file()):
        return None
    try:
        record = json.loads(record_path.read_text())
        if record.get("task") != json.loads(json.dumps(task_inputs(task, ctx), default=_json_value)):
            return None
        with open(rollout_path, "rb") as f:
            return record["row"], pickle.load(f)
    except (OSError, ValueError, KeyError, pickle.UnpicklingError, EOFError):
        return None


class TasksFailed(RuntimeError):
    """Trainings of a table that failed (after their reruns); the others finished and are kept in their folders."""

    def __init__(self, failures: list[TaskFailure], total: int):
        self.failures = failures
        lines = "\n".join(f"  - {f.name}: {f.error}" for f in failures)
        super().__init__(f"{len(failures)} of {total} trainings failed:\n{lines}\nThe others finished and are kept in "
                         "their folders: run the same again to redo only the failed ones (tracebacks: "
                         "the failures' .traceback, or the log above).")


def run_method_tasks(tasks: list[MethodTask], ctx: MethodContext, executor: Executor | None = None,
                     retries: int = 1, reuse: bool = True
                     ) -> tuple[list[dict[str, object]], dict[tuple[str, str], RolloutResult]]:
    """Run ``tasks`` with ``executor`` (default: in this process): the rows in the order of the tasks and the
    rollouts by (method key, prompt). ``reuse``: tasks whose folders hold their finished record are not run again.
    A failed task is reported and rerun up to ``retries`` times, the others kept; if some still fail,
    :class:`TasksFailed` lists them after all the others have finished."""
    executor = executor or InProcess()
    outcomes: dict[MethodTask, tuple[dict[str, object], RolloutResult]] = {}
    if reuse:
        for task in tasks:
            found = finished_task(task, ctx)
            if found is not None:
                outcomes[task] = found
        if outcomes:
            print(f"{len(outcomes)} of {len(tasks)} trainings finished before (task.json in their folders): reused",
                  flush=True)
    todo = [t for t in tasks if t not in outcomes]
    failures: list[TaskFailure] = []
    for attempt in range(retries + 1):
        if not todo:
            break
        results = executor.map(run_method_task, todo, ctx, [t.name for t in todo])
        failed: list[MethodTask] = []
        failures = []
        for task, result in zip(todo, results, strict=True):
            if isinstance(result, TaskFailure):
                failed.append(task)
                failures.append(result)
                print(f"training failed (attempt {attempt + 1} of {retries + 1}): {result.name}: {result.error}",
                      flush=True)
            else:
                outcomes[task] = result
        todo = failed
        if todo and attempt < retries:
            print(f"rerunning {len(todo)} failed training(s); the {len(outcomes)} finished are kept", flush=True)
    if todo:
        raise TasksFailed(failures, len(tasks))
    rows = [outcomes[t][0] for t in tasks]
    return rows, {(t.key, t.prompt): outcomes[t][1] for t in tasks}


def compare_methods(keys: tuple[str, ...], prompts: list[str], ctx: MethodContext, runs_dir: str | Path,
                    seconds: float = 2.0, clip_stride: int = 1, scene: str | None = None,
                    executor: Executor | None = None
                    ) -> tuple[list[dict[str, object]], dict[tuple[str, str], RolloutResult]]:
    """Train, roll out and measure every method of ``keys`` on every prompt (in ``scene``, if given): the rows of
    :func:`measure` and the rollouts by (method key, prompt). Runs go to ``runs_dir/prompt<i>/<key>``; the
    trainings are independent tasks run by ``executor`` (default: one after the other in this process; see
    :func:`run_method_tasks`)."""
    return run_method_tasks(method_tasks(keys, prompts, runs_dir, seconds, clip_stride, scene), ctx, executor)


def register_study(store: RatingStore, rollouts: dict[tuple[str, str], RolloutResult], video_dir: str | Path,
                   video_format: str = "gif") -> list[str]:
    """Write each rendered rollout, keyed by (method key, prompt), as a video under ``video_dir`` and register it in
    the user study (blinded: the raters see a code and the prompt); returns the codes in order."""
    items = []
    for i, ((key, prompt), result) in enumerate(rollouts.items()):
        if result.frames is None:
            raise ValueError(f"the rollout of {key!r} for {prompt!r} was not rendered")
        video = write_video(result.frames, Path(video_dir) / f"{i:03d}_{key}.{video_format}", fps=FPS)
        items.append(StudyItem(prompt, key, video))
    return store.register(items)
