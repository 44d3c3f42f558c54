"""Motion file I/O: poselib .npy import (exactness, safety), the .npz format, and bad input."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from anyskill.humanoid import rotations as rot
from anyskill.motion import MotionClip, MotionFormatError, load_motion
from anyskill.motion.clip import load_npz
from anyskill.motion.poselib import local_rotations_to_dofs, read_skeleton_motion, save_poselib


def _random_clip(model, frames=20, seed=0, scale=0.6):
    rng = np.random.default_rng(seed)
    mid = 0.5 * (model.dof_lower + model.dof_upper)
    half = 0.5 * (model.dof_upper - model.dof_lower) * scale
    base = rng.uniform(mid - half, mid + half)
    drift = rng.normal(size=28) * 0.02
    dof = base + drift * np.arange(frames)[:, None]
    dof = np.clip(dof, model.dof_lower + 1e-3, model.dof_upper - 1e-3)
    yaw = np.linspace(0, 1.0, frames)
    root_rot = np.stack([np.cos(yaw / 2), 0 * yaw, 0 * yaw, np.sin(yaw / 2)], -1)
    root_pos = np.stack([np.linspace(0, 1, frames), np.zeros(frames), np.full(frames, 0.9)], -1)
    return MotionClip("random", 30.0, root_pos, root_rot, dof, meta={"source": "test"}, model=model)


def test_hinge_decomposition_is_exact_inside_limits(model):
    clip = _random_clip(model, frames=50)
    from anyskill.humanoid.skeleton import Skeleton

    local = Skeleton(model).local_rotations(torch.from_numpy(clip.dof_pos))
    dofs = local_rotations_to_dofs(local, model)
    np.testing.assert_allclose(dofs, clip.dof_pos, atol=1e-9)


def test_decomposition_near_gimbal_lock_is_continuous_and_exact(model):
    # Shoulder straight forward: y = -90 deg, a gimbal-lock configuration of the XYZ chain.
    t = np.linspace(0, 1, 40)
    angles = np.stack([0.3 * np.sin(3 * t), -np.pi / 2 + 0.01 * np.sin(5 * t), 0.4 * t], -1)
    q = rot.quat_from_euler_xyz(torch.from_numpy(angles))
    local = rot.quat_identity((40, model.num_bodies), torch.float64).clone()
    shoulder = model.body_index("right_upper_arm")
    local[:, shoulder] = q
    dofs = local_rotations_to_dofs(local, model)[:, 6:9]
    back = rot.quat_from_euler_xyz(torch.from_numpy(dofs))
    assert torch.all(rot.quat_angle_between(back, q) < 1e-6)
    assert np.abs(np.diff(dofs, axis=0)).max() < 0.5  # no branch flips between frames


def test_poselib_round_trip(model, tmp_path):
    clip = _random_clip(model)
    path = save_poselib(clip, tmp_path / "clip.npy")
    back = load_motion(path)
    np.testing.assert_allclose(back.dof_pos, clip.dof_pos, atol=1e-5)
    np.testing.assert_allclose(back.body_pos(), clip.body_pos(), atol=1e-5)
    assert back.fps == clip.fps and back.meta["conversion"]["fk_error_max_m"] < 1e-5


def test_npz_round_trip(model, tmp_path):
    clip = _random_clip(model)
    clip.meta["description"] = "a test"
    back = load_motion(clip.save(tmp_path / "clip.npz"))
    for key in ("root_pos", "root_rot", "dof_pos"):
        np.testing.assert_array_equal(getattr(back, key), getattr(clip, key))
    assert back.meta == clip.meta and back.name == clip.name and back.fps == clip.fps
    assert back.num_frames == 20 and back.duration == pytest.approx(19 / 30)
    assert back.body_pos().shape == (20, 15, 3)


def test_original_poselib_clips_convert(shared_data):
    """Every shared poselib clip loads; where the pose is representable within the joint limits it is exact."""
    for path in sorted((shared_data / "motions").glob("*.npy")):
        clip = load_motion(path)
        conv = clip.meta["conversion"]
        assert np.all(np.isfinite(clip.dof_pos)) and clip.num_frames > 10
        assert np.all(clip.dof_pos >= clip.model.dof_lower - 1e-9)
        assert np.all(clip.dof_pos <= clip.model.dof_upper + 1e-9)
        assert conv["fk_error_max_m"] < 0.012, (path.name, conv)  # decomposition error before limits (1-DoF swing only)
        if not conv["limit_violations_rad"]:
            assert conv["fk_error_clamped_max_m"] < 0.01


# ---------------------------------------------------------------------------------------------- bad input
class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/anyskill_pwned",))


def _write_npy_pickle(path, obj):
    holder = np.empty((), dtype=object)
    holder[()] = obj
    np.save(path, holder, allow_pickle=True)


def test_pickle_payload_is_rejected_and_not_executed(tmp_path):
    import os

    marker = "/tmp/anyskill_pwned"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.npy"
    _write_npy_pickle(path, OrderedDict(rotation=_Evil()))
    refused = "refusing to unpickle posix.system|refusing to unpickle os.system"
    with pytest.raises(MotionFormatError, match=refused) as e:
        load_motion(path)
    assert "evil.npy" in str(e.value)
    assert not os.path.exists(marker)


def test_truncated_npy(tmp_path, model):
    good = save_poselib(_random_clip(model), tmp_path / "good.npy")
    bad = tmp_path / "truncated.npy"
    bad.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(MotionFormatError, match="truncated.npy.*(corrupted|truncated)"):
        load_motion(bad)


def test_not_a_npy_and_numeric_npy(tmp_path):
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"hello world")
    with pytest.raises(MotionFormatError, match="bad magic"):
        load_motion(junk)
    numeric = tmp_path / "numbers.npy"
    np.save(numeric, np.zeros((3, 4)))
    with pytest.raises(MotionFormatError, match="plain numbers"):
        load_motion(numeric)


def test_wrong_skeleton(tmp_path, model):
    path = save_poselib(_random_clip(model), tmp_path / "clip.npy")
    state = read_skeleton_motion(path)
    state["skeleton_tree"]["node_names"] = ["hips"] + state["skeleton_tree"]["node_names"][1:]
    _write_npy_pickle(tmp_path / "other.npy", state)
    with pytest.raises(MotionFormatError, match="other.npy: wrong skeleton"):
        load_motion(tmp_path / "other.npy")


def test_nan_values(tmp_path, model):
    path = save_poselib(_random_clip(model), tmp_path / "clip.npy")
    state = read_skeleton_motion(path)
    state["root_translation"]["arr"][3, 1] = np.nan
    _write_npy_pickle(tmp_path / "nan.npy", state)
    with pytest.raises(MotionFormatError, match="NaN"):
        load_motion(tmp_path / "nan.npy")
    clip = _random_clip(model)
    clip.dof_pos[2, 2] = np.nan
    with pytest.raises(MotionFormatError, match="dof_pos contains NaN"):
        clip.validate("x.npz")


def test_unknown_extension_and_missing_file(tmp_path):
    p = tmp_path / "clip.fbx"
    p.write_text("x")
    with pytest.raises(MotionFormatError, match=r"clip.fbx: unknown motion file extension '.fbx'"):
        load_motion(p)
    with pytest.raises(MotionFormatError, match="no such file"):
        load_motion(tmp_path / "missing.npz")


def test_bad_npz(tmp_path, model):
    p = tmp_path / "broken.npz"
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MotionFormatError, match="broken.npz: not a readable .npz"):
        load_npz(p)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(3))
    with pytest.raises(MotionFormatError, match="not an anyskill-motion file"):
        load_npz(other)
    clip = _random_clip(model)
    path = clip.save(tmp_path / "c.npz")
    data = dict(np.load(path))
    data["dof_names"] = data["dof_names"][::-1]
    np.savez(tmp_path / "swapped.npz", **data)
    with pytest.raises(MotionFormatError, match="swapped.npz: wrong skeleton"):
        load_npz(tmp_path / "swapped.npz")
    data = dict(np.load(path))
    data["dof_pos"] = data["dof_pos"][:, :20]
    np.savez(tmp_path / "short.npz", **data)
    with pytest.raises(MotionFormatError, match=r"short.npz: dof_pos must be \(20, 28\)"):
        load_npz(tmp_path / "short.npz")


def test_restricted_unpickler_allows_only_listed_globals(tmp_path):
    # A plain pickle of a builtin callable (not numpy/collections) is refused by name.
    path = tmp_path / "eval.npy"
    header = b"{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += b" " * (63 - len(header) % 64) + b"\n"
    payload = pickle.dumps(OrderedDict(x=eval), protocol=2)
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + payload)
    with pytest.raises(MotionFormatError, match="refusing to unpickle (__builtin__|builtins).eval"):
        read_skeleton_motion(path)


def test_cli_reports_bad_files_in_one_line(tmp_path, capsys):
    from anyskill.cli import main

    assert main(["convert", str(tmp_path / "missing.bvh"), str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert "anyskill convert: error:" in err and "missing.bvh: no such file" in err and "Traceback" not in err
