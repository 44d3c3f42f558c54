"""The prompt playground's pipeline (notebook 10), without its widgets: any instruction -> a trained high-level policy
-> its rollout.

    run = run_playground(PlaygroundRequest(prompt="wave hi", enhance="offline", epochs=3), "runs/playground")
    run.rollout.files            # video, similarity curve, states
    write_outputs(run, ".")      # figures/10_* and results/10_* with provenance

:func:`run_playground` is the whole pipeline in the calling thread: enhance the prompt (paper §4.3), build the goal
(text, goal image or a pose of a bundled motion clip), train π_H on the shipped low-level controller with the
reward of Eq. 3 (:func:`anyskill.hlc.train_hlc`), then roll the policy out deterministically and render it. The
ipywidgets front end is :class:`anyskill.viz.playground.PromptPlayground`.
"""

from __future__ import annotations

import html
import io
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from anyskill.config import SCALES, profile
from anyskill.hlc.goal import Goal
from anyskill.hlc.rollout import RolloutResult, rollout
from anyskill.hlc.train import train_hlc
from anyskill.provenance import Provenance
from anyskill.rl.runner import TrainResult
from anyskill.text import ENHANCER_KINDS, Enhancement, enhancer_provenance, make_enhancer
from anyskill.viz.hlc import filmstrip

GOAL_TYPES = ("text", "image", "pose")
REWARD_SOURCES = ("projection", "render")
"""How π_H's CLIP reward scores frames: the cached state projection (calibrated once per CLIP model, built on first
use: :mod:`anyskill.hlc.projection_cache`) or rendering and encoding every frame. Rollouts are always rendered."""
CLIP_CHOICES = ("random", "laion2b_s34b_b79k", "anyskill-domain")
"""Offered in the UI's CLIP box (a checkpoint path may be typed instead): random weights prove the pipeline only;
"anyskill-domain" is the project's domain model of this humanoid (closed vocabulary, not CLIP)."""
RANDOM_NOTE = "RANDOM CLIP WEIGHTS: similarities are meaningless (pipeline check only)"


class PlaygroundError(ValueError):
    """Input the playground cannot use (empty prompt, unreadable image, unknown clip, ...); the message says why."""


class TrainingCancelled(RuntimeError):
    """Raised from the epoch callback when Cancel was pressed; stops ``train_hlc``."""


@dataclass
class PlaygroundRequest:
    """What to train. ``image``: a PNG/JPG path or an (H, W, 3) uint8 array (``goal_type="image"``);
    ``pose_clip``: a bundled clip name, its pose at ``pose_time`` s (default: the middle) is the goal
    (``goal_type="pose"``, no CLIP); ``epochs`` / ``num_envs``: None for the scale's; ``llc_checkpoint``: empty for
    the shipped low-level controller."""

    prompt: str = "wave hi"
    enhance: str = "offline"
    goal_type: str = "text"
    image: str | Path | np.ndarray | None = None
    image_name: str = ""
    pose_clip: str = "squat"
    pose_time: float | None = None
    scale: str = "smoke"
    epochs: int | None = None
    num_envs: int | None = None
    clip_weights: str = "random"
    rollout_seconds: float = 2.0
    seed: int = 0
    device: str = "cpu"
    llc_checkpoint: str = ""
    reward_source: str = "projection"
    projection_cache: str = ""
    """calibration cache folder; empty: $ANYSKILL_CACHE/projection or ~/.cache/anyskill/projection."""

    def check(self) -> None:
        """Raise :class:`PlaygroundError` for input the pipeline cannot use, before any work starts."""
        if self.goal_type not in GOAL_TYPES:
            raise PlaygroundError(f"unknown goal type {self.goal_type!r}; choose one of {GOAL_TYPES}")
        if self.enhance not in ENHANCER_KINDS:
            raise PlaygroundError(f"unknown enhancer {self.enhance!r}; choose one of {ENHANCER_KINDS}")
        if self.scale not in SCALES:
            raise PlaygroundError(f"unknown scale {self.scale!r}; choose one of {SCALES}")
        if self.reward_source not in REWARD_SOURCES:
            raise PlaygroundError(f"unknown reward source {self.reward_source!r}; choose one of {REWARD_SOURCES}")
        if self.goal_type == "text" and not self.prompt.strip():
            raise PlaygroundError("the prompt is empty: type an instruction, e.g. 'wave hi'")
        if self.goal_type == "image" and self.image is None:
            raise PlaygroundError("no goal image: upload a PNG or JPG picture of the pose")
        if self.goal_type != "pose" and not self.clip_weights.strip():
            raise PlaygroundError("no CLIP weights given: a pretrained tag, a checkpoint file, or 'random'")
        if self.epochs is not None and self.epochs < 1:
            raise PlaygroundError(f"the budget must be at least 1 epoch, got {self.epochs}")
        if self.num_envs is not None and self.num_envs < 1:
            raise PlaygroundError(f"need at least 1 parallel humanoid, got {self.num_envs}")
        if self.rollout_seconds <= 0:
            raise PlaygroundError(f"the rollout must last > 0 s, got {self.rollout_seconds}")

    @property
    def max_epochs(self) -> int:
        """The training budget: ``epochs``, else the scale's."""
        return self.epochs or profile(self.scale).hlc.ppo.max_epochs

    def record(self) -> dict[str, Any]:
        """JSON-able description (an image array is named, not stored)."""
        record = asdict(self)
        if isinstance(self.image, np.ndarray) or self.image is None:
            record["image"] = self.image_name or (None if self.image is None else f"array {self.image.shape}")
        else:
            record["image"] = str(self.image)
        return record


@dataclass
class PlaygroundRun:
    """One finished pipeline: the enhancement (text goals), the goal, the training run, the rollout, provenance."""

    request: PlaygroundRequest
    enhancement: Enhancement | None
    goal: str
    train: TrainResult
    rollout: RolloutResult
    provenance: Provenance
    uses_clip: bool
    random_clip: bool
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """The label every figure of a random-weight CLIP run or of the domain model carries ("" otherwise)."""
        if self.random_clip:
            return RANDOM_NOTE
        from anyskill.domain.model import DOMAIN_LABEL

        return f"scored by the {DOMAIN_LABEL}" if DOMAIN_LABEL in str(self.provenance.clip_weights) else ""

    @property
    def title(self) -> str:
        """The goal without its CLIP and reward-source details, wrapped for a figure title."""
        import textwrap

        return textwrap.fill(self.goal.split(" | ")[0], 100)

    @property
    def similarity_label(self) -> str:
        return "CLIP cosine similarity" if self.uses_clip else "pose similarity exp(-err/σ)"


def decode_image(content: bytes, name: str = "upload") -> np.ndarray:
    """An uploaded file's bytes as an (H, W, 3) uint8 image; :class:`PlaygroundError` when it is not a picture."""
    import imageio.v3 as iio

    from anyskill.hlc.clip_goals import load_image

    try:
        arr = np.asarray(iio.imread(content))
        return load_image(arr[0] if arr.ndim == 4 else arr).numpy()  # first frame of an animated file
    except Exception as e:  # imageio raises many types for bytes that are not an image
        raise PlaygroundError(f"could not read {name!r} as an image ({type(e).__name__}); upload a PNG or JPG "
                              "file") from e


def enhance_prompt(prompt: str, kind: str) -> tuple[Enhancement, dict[str, str]]:
    """``prompt`` through the enhancer ``kind``, and the enhancer's provenance (:func:`enhancer_provenance`). An LLM
    that is absent or fails falls back to the offline lexicon, which the :class:`Enhancement` records."""
    enhancer = make_enhancer(kind)
    try:
        return enhancer.enhance(prompt), enhancer_provenance(enhancer)
    except ValueError as e:
        raise PlaygroundError(str(e)) from e


@lru_cache(maxsize=2)
def _clip_model(weights: str, device: str):
    """CLIP, kept between runs of the playground (loading takes seconds)."""
    from anyskill.reward.clip_model import ClipModel, ClipSpec

    return ClipModel(ClipSpec(weights=weights, device=device, half=device.startswith("cuda")))


def build_goal(request: PlaygroundRequest, renderer, motion_lib,
               projection=None) -> tuple[Goal, dict[str, Any]]:
    """The goal of ``request`` and what to record about it (a text goal: its enhancement and enhancer); CLIP goals
    score frames with ``projection`` (a :class:`~anyskill.reward.projection.StateProjection`) when given, else
    rendered by ``renderer``."""
    from anyskill.hlc.clip_goals import ImageGoal, RewardSource, TextGoal
    from anyskill.hlc.goal_spec import find_clip
    from anyskill.hlc.pose_goal import PoseGoal

    if request.goal_type == "pose":
        try:
            clip = find_clip(request.pose_clip, motion_lib)
        except ValueError as e:
            raise PlaygroundError(str(e)) from e
        return PoseGoal.from_clip(clip, request.pose_time), {}
    clip_model = _clip_model(request.clip_weights.strip(), request.device)
    source: RewardSource = "projection" if projection is not None else "render"
    if request.goal_type == "text":
        enhancement, enhancer = enhance_prompt(request.prompt, request.enhance)
        return (TextGoal(clip_model, renderer, enhancement, source, projection),
                {"enhancement": enhancement, **enhancer})
    assert request.image is not None
    try:
        return ImageGoal(clip_model, renderer, request.image, source, projection, name=request.image_name or None), {}
    except (OSError, ValueError) as e:
        raise PlaygroundError(f"unusable goal image: {e}") from e


def run_playground(request: PlaygroundRequest, out_dir: str | Path,
                   on_epoch: Callable[[int, int, dict[str, float]], None] | None = None,
                   cancel: threading.Event | None = None,
                   on_phase: Callable[[str], None] | None = None) -> PlaygroundRun:
    """Enhance, build the goal, train π_H (``out_dir/policy``) and roll it out (``out_dir/rollout``).

    ``on_epoch(epoch, max_epochs, stats)`` follows the training; ``cancel`` set stops it at the next epoch end with
    :class:`TrainingCancelled`; ``on_phase(text)`` hears each step as it starts.
    """
    from anyskill.data import default_library
    from anyskill.humanoid.model import load_humanoid
    from anyskill.llc.shipped import shipped_llc
    from anyskill.sim.render import CameraSpec, StateRenderer

    request.check()
    say = on_phase or (lambda _: None)
    out = Path(out_dir)
    llc = Path(request.llc_checkpoint) if request.llc_checkpoint else shipped_llc()

    def stop_if_cancelled() -> None:
        if cancel is not None and cancel.is_set():
            raise TrainingCancelled("cancelled")

    def epoch_done(epoch: int, max_epochs: int, stats: dict[str, float]) -> None:
        if on_epoch is not None:
            on_epoch(epoch, max_epochs, stats)
        if cancel is not None and cancel.is_set() and epoch < max_epochs:
            raise TrainingCancelled(f"cancelled after epoch {epoch} of {max_epochs}")

    say("loading the goal (CLIP, enhancement)" if request.goal_type != "pose" else "loading the goal pose")
    motion_lib = default_library()
    renderer = StateRenderer(load_humanoid().mj_model(), CameraSpec())  # made and used in this thread (EGL)
    try:
        calibration = None
        if request.goal_type != "pose" and request.reward_source == "projection":
            from anyskill.hlc.projection_cache import calibrated_projection

            calibration = calibrated_projection(_clip_model(request.clip_weights.strip(), request.device), llc,
                                                scale=request.scale, cache_dir=request.projection_cache or None,
                                                on_status=say)
            say(calibration.summary())
        goal, about = build_goal(request, renderer, motion_lib, calibration.projection if calibration else None)
        if calibration is not None:
            about["projection"] = {"file": str(calibration.path), "source": calibration.source,
                                   "build_seconds": calibration.build_seconds, "fidelity": calibration.fidelity}
        enhancement = about.pop("enhancement", None)
        uses_clip = request.goal_type != "pose"
        clip = getattr(goal, "clip_model", None)
        random_clip = bool(clip is not None and clip.spec.is_random)
        clip_weights = clip.spec.description if clip is not None else "none (pose goal without CLIP)"
        config: dict[str, Any] = {"request": request.record(), "goal": goal.description, "llc": str(llc),
                                  "max_epochs": request.max_epochs, **about}
        if enhancement is not None:
            config["enhancement"] = enhancement.record()
        prov = Provenance("10_prompt_playground", config=config, seed=request.seed, device=request.device,
                          clip_weights=clip_weights)
        stop_if_cancelled()
        say(f"training π_H for {request.max_epochs} epochs")
        train = train_hlc(goal, llc, request.scale, out / "policy", seed=request.seed, num_envs=request.num_envs,
                          max_epochs=request.max_epochs, motion_lib=motion_lib, device=request.device,
                          progress=False, on_epoch=epoch_done)
        stop_if_cancelled()
        say(f"rolling out the trained policy for {request.rollout_seconds:g} s and rendering it")
        scored = _rendered_twin(goal, renderer, enhancement, request) if calibration is not None else goal
        result = rollout(train.checkpoint, llc, scored, seconds=request.rollout_seconds, seed=request.seed,
                         out_dir=out / "rollout", motion_lib=motion_lib, renderer=renderer)
    finally:
        renderer.close()
    prov.finish()
    return PlaygroundRun(request, enhancement, goal.description, train, result, prov, uses_clip, random_clip)


def _rendered_twin(goal: Goal, renderer, enhancement: Enhancement | None, request: PlaygroundRequest) -> Goal:
    """The same CLIP goal scoring rendered frames (rollouts are measured on renders, not on the projection)."""
    from anyskill.hlc.clip_goals import ImageGoal, TextGoal

    if isinstance(goal, TextGoal):
        return TextGoal(goal.clip_model, renderer, enhancement if enhancement is not None else goal.prompt)
    assert isinstance(goal, ImageGoal)
    return ImageGoal(goal.clip_model, renderer, goal.image, name=request.image_name or None)


def plot_run(run: PlaygroundRun):
    """Two panels: the goal similarity per training epoch and per frame of the rollout."""
    fig, (ax_train, ax_roll) = plt.subplots(1, 2, figsize=(10, 3.4))
    epochs = [s["epoch"] for s in run.train.epoch_stats]
    ax_train.plot(epochs, [s["similarity"] for s in run.train.epoch_stats], marker="o")
    ax_train.set(xlabel="epoch", ylabel=f"mean {run.similarity_label}", title="training (all envs)")
    ax_train.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_roll.plot(run.rollout.times, run.rollout.similarity)
    ax_roll.set(xlabel="time (s)", ylabel=run.similarity_label, title="rollout of the trained policy")
    for ax in (ax_train, ax_roll):
        ax.grid(alpha=0.3)
        ax.title.set_fontsize(9)
    fig.suptitle(run.title + (f"\n{run.note}" if run.note else ""), fontsize=9, color="#b00" if run.note else "black")
    fig.tight_layout()
    return fig


def write_outputs(run: PlaygroundRun, output_root: str | Path) -> dict[str, Path]:
    """``figures/10_playground_curves.png``, ``10_playground_filmstrip.png``, the rollout video
    ``10_playground_rollout.gif``; ``results/10_playground_rollout.csv`` (similarity per frame) and
    ``results/10_playground.json`` (the request, enhancement, goal, training summary), all with provenance."""
    import pandas as pd

    from anyskill.sim.render import write_video

    root = Path(output_root)
    figures, results = root / "figures", root / "results"
    prov, ro = run.provenance, run.rollout
    files = {"curves": prov.save_figure(plot_run(run), figures / "10_playground_curves.png")}
    plt.close("all")
    if ro.frames is not None:
        strip = filmstrip(ro.frames, ro.times, ro.similarity, title=run.title + (f"\n{run.note}" if run.note else ""))
        files["filmstrip"] = prov.save_figure(strip, figures / "10_playground_filmstrip.png")
        plt.close(strip)
        files["video"] = write_video(ro.frames[::2], figures / "10_playground_rollout.gif", fps=15.0)
    curve = pd.DataFrame({"time_s": ro.times, "similarity": ro.similarity})
    if ro.pose_error is not None:
        curve["pose_error_m"] = ro.pose_error
    files["rollout_csv"] = prov.write_csv(curve, results / "10_playground_rollout.csv")
    last = run.train.epoch_stats[-1] if run.train.epoch_stats else {}
    files["summary"] = prov.write_json({
        "goal": run.goal, "enhancement": run.enhancement.record() if run.enhancement else None,
        "similarity_meaning": run.note or run.similarity_label,
        "epochs": run.train.epochs, "samples": run.train.samples, "train_wall_time_s": run.train.wall_time_s,
        "last_epoch": last, "rollout_seconds": float(ro.times[-1]), "rollout_mean_similarity": ro.mean_similarity,
        "rollout_mean_pose_error_m": None if ro.pose_error is None else ro.mean_pose_error},
        results / "10_playground.json")
    run.files.update(files)
    return files


def save_policy(run: PlaygroundRun, path: str | Path) -> Path:
    """Copy the trained policy (``hlc.pth``, loadable with :func:`anyskill.hlc.load_hlc`) to ``path``, its training
    statistics and provenance beside it."""
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(run.train.checkpoint, path)
    shutil.copyfile(run.train.out_dir / "epoch_stats.csv", path.with_name(path.stem + "_epoch_stats.csv"))
    run.provenance.write_json({"policy": str(path)}, path.with_suffix(".json"))
    return path.resolve()


def save_rollout(run: PlaygroundRun, folder: str | Path) -> Path:
    """Copy the rollout's files (video, states, similarity curve) into ``folder``."""
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    for src in run.rollout.files.values():
        shutil.copyfile(src, folder / Path(src).name)
    return folder.resolve()


def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _message(text: str, error: bool = False) -> str:
    colour = "#b00" if error else "#333"
    return f"<span style='color:{colour}'>{html.escape(text)}</span>"
