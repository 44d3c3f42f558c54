"""The prompt playground (notebook 10): any instruction -> a trained high-level policy -> its rollout, in ipywidgets.

:class:`PromptPlayground` is the front end of :func:`~anyskill.viz.playground_run.run_playground` (the pipeline, whose
names are re-exported here): the pipeline runs in a background thread, an ``IntProgress`` advances from
``train_hlc``'s ``on_epoch`` callback, Cancel stops at the next epoch end, and errors are shown as a message. Every
callback is a plain method, so tests drive the UI without a browser.
"""

from __future__ import annotations

import html
import threading
from pathlib import Path

import ipywidgets as widgets

from anyskill.config import SCALES, profile
from anyskill.sim.video import video_html
from anyskill.text import ENHANCER_KINDS, Enhancement
from anyskill.viz.playground_run import (  # noqa: F401  (re-exported: the playground's public names)
    CLIP_CHOICES,
    GOAL_TYPES,
    RANDOM_NOTE,
    REWARD_SOURCES,
    PlaygroundError,
    PlaygroundRequest,
    PlaygroundRun,
    TrainingCancelled,
    _figure_png,
    _message,
    build_goal,
    decode_image,
    enhance_prompt,
    plot_run,
    run_playground,
    save_policy,
    save_rollout,
    write_outputs,
)


class PromptPlayground:
    """ipywidgets front end of :func:`run_playground`; ``widget`` is the box to display.

    Tests set the widgets' values and call :meth:`train`, :meth:`cancel`, :meth:`save_policy` and
    :meth:`save_rollout` (or ``button.click()``), then :meth:`wait` for the background thread.
    """

    def __init__(self, out_dir: str | Path = "runs/playground", request: PlaygroundRequest | None = None):
        from anyskill.data import default_library

        req = request or PlaygroundRequest()
        self.out_dir = Path(out_dir)
        self.run: PlaygroundRun | None = None
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._runs = 0
        wide = widgets.Layout(width="520px")
        self.prompt = widgets.Textarea(value=req.prompt, description="Prompt", layout=wide, continuous_update=False)
        self.enhance = widgets.ToggleButtons(options=ENHANCER_KINDS, value=req.enhance, description="Enhance")
        self.enhanced = widgets.HTML()
        self.goal_type = widgets.ToggleButtons(options=GOAL_TYPES, value=req.goal_type, description="Goal")
        self.image = widgets.FileUpload(accept="image/*", multiple=False, description="Goal image")
        self.pose_clip = widgets.Dropdown(options=default_library().clip_names, value=req.pose_clip,
                                          description="Pose clip")
        self.scale = widgets.Dropdown(options=SCALES, value=req.scale, description="Scale")
        self.epochs = widgets.BoundedIntText(value=req.max_epochs, min=1, max=100_000, description="Epochs")
        self.num_envs = widgets.BoundedIntText(value=req.num_envs or profile(req.scale).hlc.num_envs, min=1,
                                               max=65_536, description="Humanoids")
        self.clip_weights = widgets.Combobox(value=req.clip_weights, options=CLIP_CHOICES, description="CLIP",
                                             ensure_option=False, layout=wide)
        self.reward_source = widgets.Dropdown(options=REWARD_SOURCES, value=req.reward_source, description="Reward",
                                              tooltip="projection: the cached state projection (calibrated on first "
                                              "use); render: render and encode every frame")
        self.seconds = widgets.BoundedFloatText(value=req.rollout_seconds, min=0.1, max=60.0, description="Rollout s")
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", icon="stop",
                                            disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=req.max_epochs, description="Epochs")
        self.status = widgets.HTML()
        self.video = widgets.HTML()  # a <video> that plays muted by itself (anyskill.sim.video), not widgets.Video
        self.gif = widgets.Image(format="gif", width=320)
        self.plot = widgets.Image(format="png")
        self.media = widgets.HBox()
        self.policy_path = widgets.Text(value=str(self.out_dir / "saved" / "policy.pth"), description="Policy to",
                                        layout=wide)
        self.rollout_path = widgets.Text(value=str(self.out_dir / "saved" / "rollout"), description="Rollout to",
                                         layout=wide)
        self.save_policy_button = widgets.Button(description="Save policy", icon="save", disabled=True)
        self.save_rollout_button = widgets.Button(description="Save rollout", icon="save", disabled=True)
        self.saved = widgets.HTML()
        self._device, self._seed, self._llc = req.device, req.seed, req.llc_checkpoint
        self._projection_cache = req.projection_cache

        self.train_button.on_click(lambda _: self.train())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.save_policy_button.on_click(lambda _: self.save_policy())
        self.save_rollout_button.on_click(lambda _: self.save_rollout())
        for w in (self.prompt, self.enhance):
            w.observe(lambda _: self.preview(), names="value")
        self.goal_type.observe(lambda _: self._show_goal_inputs(), names="value")
        self.scale.observe(lambda _: self._scale_defaults(), names="value")
        self.widget = widgets.VBox([
            self.prompt, self.enhance, self.enhanced, self.goal_type, self.image, self.pose_clip,
            widgets.HBox([self.scale, self.epochs, self.num_envs]), widgets.HBox([self.clip_weights, self.seconds]),
            self.reward_source,
            widgets.HBox([self.train_button, self.cancel_button, self.progress]), self.status, self.media,
            widgets.HBox([self.policy_path, self.save_policy_button]),
            widgets.HBox([self.rollout_path, self.save_rollout_button]), self.saved])
        self._show_goal_inputs()
        self.preview()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request(self) -> PlaygroundRequest:
        """The widgets' values as a checked request; :class:`PlaygroundError` for unusable input."""
        image, name = None, ""
        if self.goal_type.value == "image" and self.image.value:
            upload = self.image.value[0]
            name = upload["name"]
            image = decode_image(bytes(upload["content"]), name)
        req = PlaygroundRequest(prompt=self.prompt.value, enhance=self.enhance.value, goal_type=self.goal_type.value,
                                image=image, image_name=name, pose_clip=self.pose_clip.value, scale=self.scale.value,
                                epochs=int(self.epochs.value), num_envs=int(self.num_envs.value),
                                clip_weights=self.clip_weights.value.strip(), rollout_seconds=float(self.seconds.value),
                                seed=self._seed, device=self._device, llc_checkpoint=self._llc,
                                reward_source=self.reward_source.value, projection_cache=self._projection_cache)
        req.check()
        return req

    def preview(self) -> None:
        """Show what CLIP will read; the LLM is asked only when training starts (it may take seconds)."""
        if self.goal_type.value != "text":
            self.enhanced.value = ""
        elif self.enhance.value == "llm":
            self.enhanced.value = _message("The LLM rewrites the prompt when you press Train.")
        elif not self.prompt.value.strip():
            self.enhanced.value = _message("Type an instruction, e.g. 'wave hi'.")
        else:
            e, _ = enhance_prompt(self.prompt.value, self.enhance.value)
            self.enhanced.value = self._enhancement_html(e)

    def train(self) -> None:
        """Check the input, then train and roll out in a background thread; the UI stays responsive."""
        if self.busy:
            return
        self.saved.value = ""  # a "saved" message belongs to the run it saved
        try:
            req = self.request()
        except PlaygroundError as e:
            self.status.value = _message(str(e), error=True)
            return
        self._runs += 1
        out = self.out_dir / f"run_{self._runs:03d}"
        self._cancel.clear()
        self.progress.max, self.progress.value, self.progress.bar_style = req.max_epochs, 0, ""
        self.train_button.disabled, self.cancel_button.disabled = True, False
        self.save_policy_button.disabled = self.save_rollout_button.disabled = True
        self.run, self.media.children = None, ()  # no earlier run's video and curves beside the new one
        self.status.value = _message(f"starting ({out})")
        self._thread = threading.Thread(target=self._work, args=(req, out), daemon=True, name="anyskill-playground")
        self._thread.start()

    def cancel(self) -> None:
        """Ask the training to stop at the end of the current epoch."""
        if self.busy:
            self._cancel.set()
            self.cancel_button.disabled = True
            self.status.value = _message("cancelling at the end of the current epoch ...")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background run ends (tests, scripts); False when ``timeout`` s passed first."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy

    def save_policy(self) -> None:
        if self.run is None:
            return
        try:
            path = save_policy(self.run, self.policy_path.value)
        except OSError as e:
            self.saved.value = _message(f"could not save the policy: {e}", error=True)
            return
        self.saved.value = _message(f"policy saved: {path}")

    def save_rollout(self) -> None:
        if self.run is None:
            return
        try:
            path = save_rollout(self.run, self.rollout_path.value)
        except OSError as e:
            self.saved.value = _message(f"could not save the rollout: {e}", error=True)
            return
        self.saved.value = _message(f"rollout saved: {path}")

    def _work(self, req: PlaygroundRequest, out: Path) -> None:
        try:
            run = run_playground(req, out, on_epoch=self._epoch, cancel=self._cancel,
                                 on_phase=lambda text: setattr(self.status, "value", _message(text + " ...")))
        except TrainingCancelled as e:
            self.progress.bar_style = "warning"
            self.status.value = _message(f"{e}; nothing was rolled out")
        except Exception as e:  # shown in the UI, not as a traceback: the message says what to change
            self.progress.bar_style = "danger"
            self.status.value = _message(f"{type(e).__name__}: {e}", error=True)
        else:
            self.run = run
            self._show(run)
        finally:
            self.train_button.disabled, self.cancel_button.disabled = False, True

    def _epoch(self, epoch: int, max_epochs: int, stats: dict[str, float]) -> None:
        self.progress.max, self.progress.value = max_epochs, epoch
        self.status.value = _message(f"epoch {epoch}/{max_epochs}: similarity {stats['similarity']:.4f}, "
                                     f"reward {stats['reward']:.4f}")

    def _show(self, run: PlaygroundRun) -> None:
        ro = run.rollout
        video = ro.files.get("video")
        if video is not None and video.suffix == ".gif":
            self.gif.value = video.read_bytes()
            self.media.children = (self.gif, self.plot)
        elif video is not None:
            self.video.value = video_html(video.read_bytes())
            self.media.children = (self.video, self.plot)
        self.plot.value = _figure_png(plot_run(run))
        if run.enhancement is not None:
            self.enhanced.value = self._enhancement_html(run.enhancement)
        self.progress.bar_style = "success"
        text = (f"done in {run.provenance.wall_time_s:.0f} s: {run.train.epochs} epochs, mean rollout "
                f"{run.similarity_label} {ro.mean_similarity:.4f}; files in {ro.files['states'].parent}")
        self.status.value = _message(text) + (f"<br>{_message(run.note, error=True)}" if run.note else "")
        self.save_policy_button.disabled = self.save_rollout_button.disabled = False

    def _enhancement_html(self, e: Enhancement) -> str:
        who = f"llm {e.model}" if e.enhancer == "llm" else e.enhancer
        asked = "" if e.enhancer == self.enhance.value else f" (asked for {self.enhance.value}; {e.note})"
        return (f"CLIP reads: <b>{html.escape(e.text)}</b> <i>[{html.escape(who)}"
                f"{html.escape(asked)}]</i>")

    def _show_goal_inputs(self) -> None:
        kind = self.goal_type.value
        for w, shown in ((self.prompt, kind == "text"), (self.enhance, kind == "text"), (self.image, kind == "image"),
                         (self.pose_clip, kind == "pose")):
            w.layout.display = None if shown else "none"
        self.clip_weights.disabled = self.reward_source.disabled = kind == "pose"
        self.preview()

    def _scale_defaults(self) -> None:
        prof = profile(self.scale.value)
        self.epochs.value, self.num_envs.value = prof.hlc.ppo.max_epochs, prof.hlc.num_envs
