"""The rating UI of the user study: one rollout video at a time, four 0–10 sliders, "Submit and next".

    from IPython.display import display
    display(RatingApp(RatingStore("results/ratings.sqlite")).widget)   # asks for the rater id, then rates
    # or, for a known rater: RatingUI(RatingSession(store, rater="r07")).widget

The UI is built from a :class:`~anyskill.eval.ratings.RatingSession`, which hands it blinded items only (a code,
the instruction, the video's bytes), so the widgets — whose state is what reaches the browser — never hold a
method's name or a video's path. Every callback is a plain method (:meth:`RatingUI.submit`), testable without a
browser: set the sliders' values, then call it or ``ui.submit_button.click()``. A rater who comes back (or whose
kernel died) enters the same id and continues after their last submitted video.
"""

from __future__ import annotations

import html

import ipywidgets as widgets

from anyskill.eval.ratings import CRITERIA, SCORE_RANGE, BlindItem, RatingSession, RatingStore
from anyskill.sim.video import video_html

QUESTIONS = {
    "success": "Success: does the motion do what the instruction says?",
    "natural": "Natural: does it look like a person moving?",
    "smooth": "Smooth: is it free of jitter and sudden jumps?",
    "physics": "Physics: no floating, sliding feet, sinking into the floor or limbs passing through each other?",
}
"""The question each slider answers (0 = not at all, 10 = completely), as in the paper's study (§4.2)."""
DEFAULT_SCORE = 5
"""Where every slider starts for each new video (the middle of the scale, to favour no answer)."""


class RatingUI:
    """Widgets for one :class:`RatingSession`; ``widget`` is the box to display."""

    def __init__(self, session: RatingSession, video_width: int = 480):
        self.session = session
        self.header = widgets.HTML()
        self.video_width = video_width
        self.video = widgets.HTML()  # a muted <video> that plays by itself, also after a reload (anyskill.sim.video)
        self.image = widgets.Image(format="gif", width=video_width)  # rollouts written as .gif
        self.media = widgets.Box()
        self.sliders = {c: widgets.IntSlider(value=DEFAULT_SCORE, min=SCORE_RANGE[0], max=SCORE_RANGE[1],
                                             continuous_update=False, layout=widgets.Layout(width="360px"))
                        for c in CRITERIA}
        self.submit_button = widgets.Button(description="Submit and next", button_style="primary", icon="check")
        self.status = widgets.HTML()
        self.submit_button.on_click(lambda _: self.submit())
        questions = [widgets.VBox([widgets.HTML(f"<b>{html.escape(QUESTIONS[c])}</b>"), self.sliders[c]])
                     for c in CRITERIA]
        self.widget = widgets.VBox([self.header, self.media, *questions, self.submit_button, self.status])
        self._show(session.current)

    def scores(self) -> dict[str, int]:
        """The sliders' current values."""
        return {c: int(s.value) for c, s in self.sliders.items()}

    def submit(self) -> None:
        """Store the sliders' scores of the shown video and show the next one (or the end of the study)."""
        if self.session.finished:
            return
        try:
            item = self.session.submit(self.scores())
        except Exception as e:  # a locked or unwritable database: tell the rater, keep the item on screen
            self.status.value = f"<span style='color:#b00'>Not saved ({html.escape(type(e).__name__)}: " \
                                f"{html.escape(str(e))}); please press Submit again.</span>"
            return
        self.status.value = "Saved."
        self._show(item)

    def _show(self, item: BlindItem | None) -> None:
        if item is None:
            self.header.value = (f"<h3>Thank you, {html.escape(self.session.rater)}: all "
                                 f"{len(self.session.order)} videos are rated.</h3>")
            self.media.children = ()
            self.submit_button.disabled = True
            for slider in self.sliders.values():
                slider.disabled = True
            return
        self.header.value = (f"<p>Video {item.position} of {item.total}</p>"
                             f"<h3>Instruction: \u201c{html.escape(item.prompt)}\u201d</h3>")
        if item.video_format == "gif":
            self.image.value = item.video
            self.media.children = (self.image,)
        else:
            self.video.value = video_html(item.video, item.video_format, self.video_width)
            self.media.children = (self.video,)
        for slider in self.sliders.values():
            slider.value = DEFAULT_SCORE


class RatingApp:
    """Asks for the rater id, then shows that rater's :class:`RatingUI` (``ui`` once started) in ``widget``."""

    def __init__(self, store: RatingStore):
        self.store = store
        self.rater = widgets.Text(placeholder="your rater id", description="Rater")
        self.start_button = widgets.Button(description="Start", button_style="primary")
        self.status = widgets.HTML()
        self.start_button.on_click(lambda _: self.start())
        self.widget = widgets.VBox([widgets.HBox([self.rater, self.start_button]), self.status])
        self.ui: RatingUI | None = None

    def start(self) -> None:
        """Open the session of the entered rater id and show its first unrated video."""
        rater = self.rater.value.strip()
        if not rater:
            self.status.value = "Please enter your rater id first."
            return
        self.ui = RatingUI(RatingSession(self.store, rater))
        self.widget.children = (self.ui.widget,)
