"""Rendering for the CLIP reward and the CLIP wrapper (random weights only: this machine has no network)."""

import warnings

import numpy as np
import pytest
import torch

from anyskill.reward.clip_model import ClipModel, ClipSpec, ClipWeightsUnavailable
from anyskill.sim.render import CameraSpec, StateRenderer, write_video


@pytest.fixture(scope="module")
def renderer(model):
    return StateRenderer(model.mj_model(), CameraSpec())


@pytest.fixture(scope="module")
def clip_random():
    return ClipModel(ClipSpec(weights="random"))  # random weights: pipeline checks only, never meaningful scores


def _standing_qpos(model, x=0.0, y=0.0):
    q = np.zeros(7 + model.num_dofs)
    q[:3] = (x, y, model.spawn_height)
    q[3] = 1.0
    return q


def _body_mask(frame: np.ndarray) -> np.ndarray:
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (r > 150) & (np.abs(r - b) < 30) & (np.abs(r - g) < 30)


def test_frames_shape_and_camera_tracks_pelvis(renderer, model):
    q = np.stack([_standing_qpos(model), _standing_qpos(model, 1.5, 1.0), _standing_qpos(model, -1.0, -0.8)])
    frames = renderer.render_qpos(q)
    assert frames.shape == (3, 224, 224, 3) and frames.dtype == torch.uint8
    for f in frames.numpy():
        mask = _body_mask(f)
        assert mask.sum() > 300, "humanoid not visible"
        ys, xs = np.nonzero(mask)
        assert abs(xs.mean() - 112) < 20  # re-aimed at the pelvis: horizontally centred wherever it stands


def test_write_video(tmp_path, renderer, model):
    frames = renderer.render_qpos(np.stack([_standing_qpos(model)] * 3))
    assert write_video(frames, tmp_path / "v.gif", fps=10).stat().st_size > 1000


def test_preprocessing(clip_random):
    grey = torch.tensor(clip_random.mean.flatten().tolist()) * 255
    frames = grey.round().to(torch.uint8).expand(2, 256, 320, 3).clone()
    x = clip_random.preprocess(frames)
    assert x.shape == (2, 3, 224, 224)
    assert x.abs().max() < 0.02  # the CLIP mean colour maps to ~0 after normalisation
    raw = ClipModel.__new__(ClipModel)
    torch.nn.Module.__init__(raw)
    skip = ("_modules", "_buffers", "_parameters")
    raw.__dict__.update({k: v for k, v in clip_random.__dict__.items() if k not in skip})
    raw._modules, raw._buffers, raw._parameters = clip_random._modules, clip_random._buffers, clip_random._parameters
    raw.raw_pixels = True
    r = raw.preprocess(frames[:, :224, :224])
    assert r.max() > 100  # the authors' quirk: 0-255 values, no normalisation


def test_image_and_text_features_are_unit_norm_and_cached(clip_random):
    frames = torch.randint(0, 256, (3, 224, 224, 3), dtype=torch.uint8)
    f = clip_random.encode_images(frames)
    assert f.shape == (3, 512) and torch.allclose(f.norm(dim=-1), torch.ones(3), atol=1e-5)
    t1 = clip_random.encode_text(["wave", "bow"])
    t2 = clip_random.encode_text("wave")
    assert torch.equal(t1[0], t2[0]) and t1.shape == (2, 512)
    assert clip_random.similarity(frames, "wave").shape == (3,)


def test_long_prompt_warns(clip_random):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        clip_random.encode_text("raise the left arm slowly and then " * 12)
    assert any("truncated" in str(x.message) for x in w)


def test_missing_weights_error_lists_three_ways():
    with pytest.raises(ClipWeightsUnavailable) as e:
        ClipModel(ClipSpec(weights="laion2b_s34b_b79k", download=False))
    msg = str(e.value)
    assert "1." in msg and "2." in msg and "3." in msg and "random" in msg and "local checkpoint" in msg
    with pytest.raises(ClipWeightsUnavailable, match="neither a file nor a pretrained tag"):
        ClipModel(ClipSpec(weights="/no/such/file.bin"))


def test_random_weights_are_the_same_every_time_and_leave_the_global_rng_alone(clip_random):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    again = ClipModel(ClipSpec(weights="random"))
    assert torch.equal(torch.rand(3), expected)
    for a, b in zip(clip_random.model.parameters(), again.model.parameters(), strict=True):
        assert torch.equal(a, b)
