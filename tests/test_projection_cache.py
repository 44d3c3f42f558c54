"""The cached state-projection calibration: built once, reused without rendering (also by a new process),
invalidated when an input changes, rebuilt with a warning when its file is corrupt, half-written or mismatched;
object-aware in the scenes; fidelity numbers with known answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import anyskill.sim.render as render  # noqa: F401, I001 (before open_clip: torchvision ahead of the EGL context)
from anyskill.config.hlc import CALIBRATION_SIZES, CalibrationSizes
from anyskill.hlc import calibration_data, projection_cache
from anyskill.hlc.projection_cache import (
    ProjectionCacheWarning,
    cache_key,
    calibrated_projection,
    calibration_inputs,
    clear_memory_cache,
    clip_identity,
    default_cache_dir,
)
from anyskill.llc.shipped import shipped_llc
from anyskill.reward.clip_model import ClipModel, ClipSpec
from anyskill.reward.fidelity import projection_fidelity, rank_correlation

TINY = CalibrationSizes(frames=12, num_envs=3, render_every=1, heldout_envs=1, epochs=3, encode_batch=6)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def clip_model():
    torch.set_num_threads(1)
    return ClipModel(ClipSpec(weights="random"))


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory_cache()
    yield
    clear_memory_cache()


def _no_rendering(monkeypatch):
    """Make any render or collection fail: a reuse must not render."""
    def boom(*_a, **_k):
        raise AssertionError("the cached calibration rendered frames")

    monkeypatch.setattr(render.StateRenderer, "render_qpos", boom)
    monkeypatch.setattr(calibration_data, "collect_calibration_data", boom)


def test_calibrate_then_reused_without_rendering(tmp_path, clip_model, monkeypatch):
    built = calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path)
    assert built.source == "built" and built.path.is_file() and built.path.parent == tmp_path
    record = json.loads(built.path.with_suffix(".json").read_text())
    assert record["timings"]["frames"] == TINY.frames and record["data"]["heldout_frames"] == TINY.frames // 3
    fid = record["fidelity"]
    assert -1 <= fid["feature_cosine_min"] <= fid["feature_cosine_mean"] <= 1
    assert "random encoder" in fid["meaning"] and len(fid["text_rank_correlation"]) >= 10
    assert record["provenance"]["clip_weights"].startswith("ViT-B-32/random")
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must not stay behind"

    _no_rendering(monkeypatch)
    assert calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path).source == "memory"
    clear_memory_cache()  # a "restart" within the process: only the disk remains
    again = calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path)
    assert again.source == "disk" and again.path == built.path
    x = built.heldout["body_pos"]
    assert torch.equal(again.projection(x), built.projection(x))
    assert again.fidelity == built.fidelity


def test_survives_a_new_process(tmp_path, clip_model):
    calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path)
    code = textwrap.dedent(f"""
        import torch
        import anyskill.sim.render as render
        from anyskill.hlc import calibration_data
        from anyskill.hlc.calibration_data import CalibrationSizes
        from anyskill.hlc.projection_cache import calibrated_projection
        from anyskill.llc.shipped import shipped_llc
        from anyskill.reward.clip_model import ClipModel, ClipSpec

        def boom(*a, **k):
            raise AssertionError("rendered")

        render.StateRenderer.render_qpos = boom
        calibration_data.collect_calibration_data = boom
        torch.set_num_threads(1)
        sizes = CalibrationSizes(**{TINY.__dict__!r})
        cal = calibrated_projection(ClipModel(ClipSpec(weights="random")), shipped_llc(), sizes=sizes,
                                    cache_dir={str(tmp_path)!r})
        print("SOURCE", cal.source)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert "SOURCE disk" in out.stdout


def test_an_input_change_makes_a_new_calibration(tmp_path, clip_model):
    first = calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path)
    other = calibrated_projection(clip_model, shipped_llc(), sizes=replace(TINY, seed=1), cache_dir=tmp_path)
    assert other.source == "built" and other.path != first.path
    # the controller file's content, the CLIP identity, the render settings and the scene are all in the key
    a, b = tmp_path / "a.pth", tmp_path / "b.pth"
    a.write_bytes(b"controller one")
    b.write_bytes(b"controller two")
    base = calibration_inputs(clip_model, a, None, TINY, "bf16", {"fast": True})
    assert cache_key(calibration_inputs(clip_model, b, None, TINY, "bf16", {"fast": True})) != cache_key(base)
    assert cache_key(calibration_inputs(clip_model, a, None, TINY, "fp32", {"fast": True})) != cache_key(base)
    assert cache_key(calibration_inputs(clip_model, a, None, TINY, "bf16", {"fast": False})) != cache_key(base)
    assert cache_key(calibration_inputs(clip_model, a, "ball", TINY, "bf16", {"fast": True})) != cache_key(base)
    a.write_bytes(b"controller one, retrained")  # same path, new content: a new key
    assert cache_key(calibration_inputs(clip_model, a, None, TINY, "bf16", {"fast": True})) != cache_key(base)


def test_clip_identity_of_any_model(tmp_path, clip_model):
    assert clip_identity(clip_model) == "ViT-B-32|random|seed=0|raw_pixels=False"

    class Domain:  # a model that names itself (e.g. the domain model's content hash)
        identity = "sha256:abc"
        spec = ClipSpec(weights="anyskill-domain")

    assert clip_identity(Domain()).endswith("sha256:abc|raw_pixels=False")
    weights = tmp_path / "w.bin"
    weights.write_bytes(b"weights v1")
    fake = type("Fake", (), {"spec": ClipSpec(weights=str(weights))})()
    v1 = clip_identity(fake)
    weights.write_bytes(b"weights v2!")
    assert "file sha256=" in v1 and clip_identity(fake) != v1


def test_corrupt_half_written_or_mismatched_files_are_rebuilt(tmp_path, clip_model):
    built = calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path)
    good = built.path.read_bytes()
    x = built.heldout["body_pos"]

    built.path.write_bytes(good[: len(good) // 2])  # half-written
    clear_memory_cache()
    with pytest.warns(ProjectionCacheWarning, match="cannot be read"):
        cal = calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path)
    assert cal.source == "built" and torch.allclose(cal.projection(x), built.projection(x))

    payload = torch.load(built.path, weights_only=True)  # a tensor changed behind the checksum's back
    name = next(k for k in payload["tensors"] if k.startswith("net."))
    payload["tensors"][name] = payload["tensors"][name] + 1.0
    torch.save(payload, built.path)
    clear_memory_cache()
    with pytest.warns(ProjectionCacheWarning, match="checksum"):
        assert calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path).source == "built"

    other = calibrated_projection(clip_model, shipped_llc(), sizes=replace(TINY, seed=1), cache_dir=tmp_path)
    built.path.write_bytes(other.path.read_bytes())  # another calibration's file under this key's name
    clear_memory_cache()
    with pytest.warns(ProjectionCacheWarning, match="other inputs"):
        assert calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path).source == "built"

    built.path.write_bytes(b"not a torch file")
    clear_memory_cache()
    messages: list[str] = []
    with pytest.warns(ProjectionCacheWarning):
        calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path, on_status=messages.append)
    assert any("is being rebuilt" in m for m in messages)
    clear_memory_cache()
    assert calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path).source == "disk"


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ANYSKILL_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path / "projection"
    assert default_cache_dir(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("ANYSKILL_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "anyskill" / "projection"


@pytest.mark.parametrize("scene, dim", [("ball", 3), ("door", 2)])
def test_object_aware_projection_reads_the_object(tmp_path, clip_model, scene, dim):
    from anyskill.hlc.clip_goals import TextGoal
    from anyskill.hlc.goal import HumanoidStates

    cal = calibrated_projection(clip_model, shipped_llc(), scene=scene, sizes=TINY, cache_dir=tmp_path)
    proj = cal.projection
    assert proj.object_dim == dim and cal.record["inputs"]["scene"] == scene
    qpos = cal.heldout["qpos"][:2].clone()
    states = HumanoidStates(cal.heldout["body_pos"][:2], torch.zeros(2, 15, 4), qpos)
    goal = TextGoal(clip_model, None, "kick the ball", "projection", proj)
    before = goal.image_features(states)
    moved = qpos.clone()
    moved[:, proj.humanoid_nq] += 1.0  # ball 1 m further along x / door leaf turned 1 rad
    after = goal.image_features(HumanoidStates(states.body_pos, states.body_rot, moved))
    assert not torch.allclose(before, after)
    with pytest.raises(ValueError, match="object-aware"):
        proj.predict(states.body_pos, qpos[:, :proj.humanoid_nq])
    assert projection_cache.calibrated_projection(clip_model, shipped_llc(), scene=scene, sizes=TINY,
                                                  cache_dir=tmp_path).source == "memory"


def test_fidelity_known_answers():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert rank_correlation([1, 1, 1], [1, 2, 3]) != rank_correlation([1, 1, 1], [1, 2, 3])  # NaN: constant
    g = torch.Generator().manual_seed(0)
    rendered = torch.randn(50, 8, generator=g)
    text = torch.randn(2, 8, generator=g)
    same = projection_fidelity(rendered * 3.0, rendered, text, ["a", "b"], random_weights=False)
    assert same["feature_cosine_min"] == pytest.approx(1.0, abs=1e-6)
    assert same["text_rank_correlation"] == {"a": pytest.approx(1.0), "b": pytest.approx(1.0)}
    noise = projection_fidelity(torch.randn(50, 8, generator=g), rendered, text, ["a", "b"], random_weights=True)
    assert abs(noise["text_rank_correlation_mean"]) < 0.5 and noise["feature_cosine_mean"] < 0.5
    assert "random encoder" in noise["meaning"]


def test_bf16_encoder_matches_fp32(clip_model):
    from anyskill.reward.fast_encode import BatchedImageEncoder, cpu_supports_bf16, max_cosine_error

    frames = torch.randint(0, 256, (3, 64, 80, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    enc = BatchedImageEncoder(clip_model, "auto", batch_size=2)
    assert enc.precision == ("bf16" if cpu_supports_bf16() else "fp32")
    assert max_cosine_error(enc.encode(frames), clip_model.encode_images(frames)) < 2e-3
    assert BatchedImageEncoder(clip_model, "fp32").encode(frames).allclose(clip_model.encode_images(frames))


def test_linear_attention_is_the_same_function():
    from anyskill.reward.fast_encode import LinearAttention

    torch.manual_seed(0)
    for batch_first in (False, True):
        mha = torch.nn.MultiheadAttention(64, 4, batch_first=batch_first).eval()
        x = torch.randn(7, 3, 64)  # (L, B, E), or (B, L, E) when batch_first
        with torch.no_grad():
            want = mha(x, x, x, need_weights=False)[0]
            got, none = LinearAttention(mha)(x, x, x, need_weights=False)
        assert none is None and got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="self-attention only"):
        LinearAttention(mha)(x, torch.randn_like(x), x)


def test_int8_encoder_checks_its_own_error(clip_model, monkeypatch):
    from anyskill.reward import fast_encode
    from anyskill.reward.fast_encode import BatchedImageEncoder, QuantizationError, max_cosine_error

    frames = torch.randint(0, 256, (3, 64, 80, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    enc = BatchedImageEncoder(clip_model, "int8", batch_size=2)
    assert enc.precision == "int8" and enc.int8_error is None
    feats = enc.encode(frames)
    assert feats.shape == (3, clip_model.embed_dim) and torch.allclose(feats.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert 0 < enc.int8_error <= fast_encode.INT8_MAX_COSINE_ERROR  # quantized: not exact, but close
    assert max_cosine_error(feats, clip_model.encode_images(frames)) < fast_encode.INT8_MAX_COSINE_ERROR
    assert "int8" in enc.description and "max cosine error" in enc.description
    assert all(not isinstance(m, torch.nn.MultiheadAttention) for m in enc._visual.modules())
    assert any(isinstance(m, torch.nn.MultiheadAttention) for m in clip_model.model.visual.modules())  # untouched
    monkeypatch.setattr(fast_encode, "INT8_MAX_COSINE_ERROR", 0.0)  # weights whose int8 error is too large
    with pytest.raises(QuantizationError, match="precision 'fp32'"):
        BatchedImageEncoder(clip_model, "int8").encode(frames)
    with pytest.raises(ValueError, match="precision must be one of"):
        BatchedImageEncoder(clip_model, "int4")  # type: ignore[arg-type]


def test_int8_calibration_refused_on_weights_it_cannot_encode(clip_model, tmp_path, monkeypatch):
    """An int8 encoder whose error is too large stops the calibration at its first frames; nothing is cached."""
    from anyskill.reward import fast_encode

    monkeypatch.setattr(fast_encode, "INT8_MAX_COSINE_ERROR", 0.0)
    with pytest.raises(fast_encode.QuantizationError, match="precision 'fp32'"):
        calibrated_projection(clip_model, shipped_llc(), sizes=TINY, cache_dir=tmp_path, precision="int8")
    assert not list(tmp_path.glob("*"))


def test_cli_calibrate_and_train_hlc_use_the_cache(tmp_path, monkeypatch, capsys):
    from anyskill.cli import main

    monkeypatch.setitem(CALIBRATION_SIZES, "smoke", TINY)
    assert main(["calibrate", "--clip-weights", "random", "--scale", "smoke", "--cache-dir", str(tmp_path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "calibrating the state projection" in out and "rank correlation" in out
    files = list(tmp_path.glob("humanoid-*.pt"))
    assert len(files) == 1
    clear_memory_cache()

    def no_collection(*_a, **_k):
        raise AssertionError("train-hlc calibrated again")

    monkeypatch.setattr(calibration_data, "collect_calibration_data", no_collection)
    assert main(["train-hlc", "--text", "wave hi", "--llc", str(shipped_llc()), "--clip-weights", "random",
                 "--scale", "smoke", "--epochs", "1", "--num-envs", "4", "--projection-cache", str(tmp_path),
                 "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "calibrating" not in out and "reward source projection" in out
    # the calibration's record, as `anyskill calibration-times` gathers it for the README
    assert main(["calibration-times", str(tmp_path), "--out", str(tmp_path / "times.json")]) == 0
    row, = json.loads((tmp_path / "times.json").read_text())["calibrations"]
    assert row["scene"] == "humanoid" and row["frames"] == TINY.frames and row["total_s"] > 0
    assert row["clip"].startswith("ViT-B-32|random") and "random" in row["fidelity_meaning"]
    assert main(["calibration-times", str(tmp_path / "run")]) == 2  # no records there


def test_playground_ui_state_between_runs(tmp_path):
    """Train clears the last run's "saved" message and media; Cancel cannot be pressed twice."""
    import threading

    from anyskill.viz.playground import PlaygroundRequest, PromptPlayground

    ui = PromptPlayground(tmp_path, PlaygroundRequest(prompt="", clip_weights="random"))
    ui.saved.value = "rollout saved: /somewhere"
    ui.train()  # the empty prompt is refused with a message, and the stale message is gone
    assert ui.saved.value == "" and "empty" in ui.status.value and not ui.busy
    release = threading.Event()
    ui._thread = threading.Thread(target=release.wait, daemon=True)
    ui._thread.start()
    ui.cancel_button.disabled = False
    ui.cancel()
    assert ui.cancel_button.disabled and ui._cancel.is_set()
    release.set()
    assert ui.wait(5)
