"""An HTML5 ``<video>`` for a widget, that plays by itself when shown, also after a page reload.

Browsers autoplay only muted video (rollouts have no sound), and ``widgets.Video`` cannot set ``muted``. ``autoplay``
alone is not enough either: a widget's view is rendered into a detached element and attached afterwards (as after a
page reload), and Chromium does not start a video that became ready while detached (measured: it stays paused at 0 s).
So the video also calls ``play()`` itself once its first frame has loaded. ``playsinline`` keeps it in the page on
phones; ``loop`` repeats the short rollout.

    widgets.HTML(video_html(path.read_bytes()))          # mp4 bytes -> markup with the bytes inline (base64)
"""

from __future__ import annotations

import base64

VIDEO_CLASS = "anyskill-rollout"
"""The ``<video>`` element's class (what the browser test looks for)."""


def video_html(data: bytes, fmt: str = "mp4", width: int = 320) -> str:
    """Markup of a muted, looping, self-starting ``<video>`` of ``data`` (the file's bytes, ``fmt`` its container)."""
    if fmt not in ("mp4", "webm"):
        raise ValueError(f"fmt must be 'mp4' or 'webm' (a gif is an image, not a video), got {fmt!r}")
    src = base64.b64encode(data).decode("ascii")
    return (f"<video class='{VIDEO_CLASS}' autoplay muted loop playsinline controls width='{int(width)}' "
            f"onloadeddata='this.play().catch(() => {{}})' src='data:video/{fmt};base64,{src}'></video>")
