"""The prompt playground (notebook 10) driven headlessly: widget values set, buttons clicked, the background thread
awaited; training, rollout, video, curves, saving, cancel and the error messages for bad input."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest
import torch

from anyskill.hlc.policy import load_hlc
from anyskill.provenance import read_csv
from anyskill.viz.playground import (
    RANDOM_NOTE,
    PlaygroundError,
    PlaygroundRequest,
    PromptPlayground,
    decode_image,
    run_playground,
    write_outputs,
)

TIMEOUT_S = 240
NOW = datetime.now(timezone.utc)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _ui(tmp_path, **values) -> PromptPlayground:
    ui = PromptPlayground(tmp_path / "pg")
    ui.num_envs.value, ui.epochs.value, ui.seconds.value = 2, 2, 0.4
    for name, value in values.items():
        getattr(ui, name).value = value
    return ui


def _png_bytes(shape=(40, 30, 3)) -> bytes:
    import imageio.v3 as iio

    buf = io.BytesIO()
    iio.imwrite(buf, np.full(shape, 200, np.uint8), extension=".png")
    return buf.getvalue()


def test_text_goal_trains_in_the_background_rolls_out_and_saves(tmp_path):
    ui = _ui(tmp_path, prompt="wave hi", enhance="offline", clip_weights="random")
    assert "raised arm bent at the elbow" in ui.enhanced.value  # the offline lexicon's Fig. 6 pair, shown at once
    ui.train_button.click()
    assert ui.busy and ui.train_button.disabled and not ui.cancel_button.disabled  # returned at once, thread runs
    assert ui.wait(TIMEOUT_S), "training did not finish in time"
    assert ui.run is not None, ui.status.value
    assert ui.progress.value == ui.progress.max == 2 and ui.progress.bar_style == "success"
    assert ui.media.children[0] in (ui.video, ui.gif) and len(ui.media.children[0].value) > 1000
    if ui.media.children[0] is ui.video:  # browsers autoplay only muted video, also after a page reload
        assert all(f" {a} " in ui.video.value for a in ("autoplay", "muted", "loop", "playsinline"))
        assert "src='data:video/mp4;base64," in ui.video.value
    assert bytes(ui.plot.value[:4]) == b"\x89PNG"
    assert RANDOM_NOTE in ui.status.value and "done" in ui.status.value
    assert not ui.train_button.disabled and ui.cancel_button.disabled

    ui.save_policy_button.click()
    policy_file = tmp_path / "pg" / "saved" / "policy.pth"
    assert str(policy_file) in ui.saved.value
    policy = load_hlc(policy_file)
    assert "raised arm bent at the elbow" in policy.description
    assert json.loads(policy_file.with_suffix(".json").read_text())["provenance"]["clip_weights"].endswith(
        "(RANDOM: no meaningful similarity)")
    ui.rollout_path.value = str(tmp_path / "kept")
    ui.save_rollout_button.click()
    assert {"states.npz", "similarity.csv", "similarity.png"} <= {p.name for p in (tmp_path / "kept").iterdir()}
    assert "rollout saved" in ui.saved.value

    # a new run: the "saved" message, the video and curves and the Save buttons belong to the run before it
    ui.epochs.value = 50
    ui.train_button.click()
    assert ui.busy and ui.saved.value == "" and ui.media.children == () and ui.run is None
    assert ui.save_policy_button.disabled and ui.save_rollout_button.disabled
    ui.cancel_button.click()
    assert ui.cancel_button.disabled and "cancelling" in ui.status.value  # pressed once is enough
    assert ui.wait(TIMEOUT_S)
    assert "cancelled" in ui.status.value and "nothing was rolled out" in ui.status.value, ui.status.value
    assert ui.media.children == () and ui.run is None and ui.save_policy_button.disabled
    assert not ui.train_button.disabled and ui.cancel_button.disabled


def test_bad_input_is_a_message_not_a_traceback(tmp_path):
    ui = _ui(tmp_path, prompt="   ")
    assert "Type an instruction" in ui.enhanced.value
    ui.train()
    assert not ui.busy and "prompt is empty" in ui.status.value

    ui.goal_type.value = "image"
    assert ui.image.layout.display is None and ui.prompt.layout.display == "none"
    ui.train()
    assert not ui.busy and "no goal image" in ui.status.value
    ui.image.value = ({"name": "notes.txt", "type": "image/png", "size": 9, "content": memoryview(b"not a png"),
                       "last_modified": NOW},)
    ui.train()
    assert not ui.busy and "could not read" in ui.status.value and "notes.txt" in ui.status.value

    ui.goal_type.value = "text"
    ui.prompt.value = "kick"
    ui.clip_weights.value = str(tmp_path / "missing_clip.bin")  # neither a file nor a pretrained tag
    ui.train()
    assert ui.wait(TIMEOUT_S)
    assert "ClipWeightsUnavailable" in ui.status.value and ui.progress.bar_style == "danger" and ui.run is None
    assert not ui.train_button.disabled

    ui.goal_type.value = "image"
    ui.clip_weights.value, ui.epochs.value = "random", 1
    ui.image.value = ({"name": "pose.png", "type": "image/png", "size": 1, "content": memoryview(_png_bytes()),
                       "last_modified": NOW},)
    ui.train()
    assert ui.wait(TIMEOUT_S)
    assert ui.run is not None and "image pose.png" in ui.run.goal, ui.status.value


def test_decode_image_accepts_pictures_and_refuses_other_bytes():
    assert decode_image(_png_bytes((40, 30, 4))).shape == (40, 30, 3)
    with pytest.raises(PlaygroundError, match="could not read"):
        decode_image(b"\x00" * 64, "blank.png")


def test_cancel_stops_training(tmp_path):
    ui = _ui(tmp_path, goal_type="pose", pose_clip="squat")
    ui.epochs.value = 500
    ui.train()
    for _ in range(TIMEOUT_S * 10):
        if ui.progress.value >= 1 or not ui.busy:
            break
        ui.wait(0.1)
    ui.cancel_button.click()
    assert ui.cancel_button.disabled
    assert ui.wait(TIMEOUT_S)
    assert "cancelled after epoch" in ui.status.value, ui.status.value
    assert 1 <= ui.progress.value < 500 and ui.run is None and ui.save_policy_button.disabled


def test_pose_goal_pipeline_writes_outputs_with_provenance(tmp_path):
    """The pose goal (no CLIP) through the function API and :func:`write_outputs`: the similarity is the pose
    similarity and carries no random-weight label."""
    req = PlaygroundRequest(goal_type="pose", pose_clip="squat", epochs=1, num_envs=2, rollout_seconds=0.4)
    run = run_playground(req, tmp_path / "run")
    files = write_outputs(run, tmp_path)
    curve, meta = read_csv(files["rollout_csv"])
    assert {"time_s", "similarity", "pose_error_m"} <= set(curve.columns) and curve["pose_error_m"].gt(0).all()
    assert meta["clip_weights"].startswith("none") and meta["commit"]
    summary = json.loads(files["summary"].read_text())
    assert summary["epochs"] == 1 and summary["similarity_meaning"].startswith("pose similarity")
    assert files["curves"].stat().st_size > 10_000 and files["video"].read_bytes()[:4] == b"GIF8"
