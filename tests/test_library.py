"""Tests of the motion library: interpolation, velocities, sampling, AMP windows, manifests."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.model import load_humanoid
from anyskill.humanoid.obs import amp_frame_obs
from anyskill.motion import MotionClip, MotionLibrary, load_motion
from anyskill.motion.library import ManifestError, MotionState

MOTIONS = SHARED_DATA / "motions"
MODEL = load_humanoid()
D = MODEL.num_dofs


def yaw_quat(angle: np.ndarray) -> np.ndarray:
    """(T,) rad -> (T, 4) wxyz rotations about z."""
    return np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], axis=-1)


def assert_same_rotations(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    """Quaternions equal up to sign (q and -q are the same rotation)."""
    b = b.to(a.dtype)
    err = torch.minimum((a - b).norm(dim=-1), (a + b).norm(dim=-1))
    assert err.max() < atol, f"rotations differ by up to {float(err.max()):.2e} (quaternion distance)"


def quat_mul_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return rot.quat_mul(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def synthetic_clip(
    num_frames: int = 31,
    fps: float = 30.0,
    speed: float = 1.0,
    yaw_rate: float = 0.0,
    dof_rate: float = 0.0,
    tilt: float = 0.0,
    name: str = "synthetic",
) -> MotionClip:
    """Root moving along x at ``speed`` m/s, spinning about world z at ``yaw_rate`` rad/s on top of a fixed
    tilt about x, every hinge moving at ``dof_rate`` rad/s from a non-trivial pose."""
    t = np.arange(num_frames) / fps
    root_pos = np.stack([speed * t, 0.1 + 0 * t, 0.9 + 0 * t], axis=-1)
    tilt_q = np.array([[math.cos(tilt / 2), math.sin(tilt / 2), 0.0, 0.0]]).repeat(num_frames, 0)
    root_rot = quat_mul_np(yaw_quat(yaw_rate * t), tilt_q)
    base = np.linspace(-0.3, 0.3, D)
    dof_pos = base[None] + dof_rate * t[:, None]
    return MotionClip(name, fps, root_pos, root_rot, dof_pos, meta={"source": "synthetic"}, model=MODEL)


@pytest.fixture(scope="module")
def real_clips() -> list[MotionClip]:
    """The CMU walk and a part of it as a second, shorter clip.

    The file stores 30 fps data at 60 fps with every frame repeated; keep every second frame at 30 fps.
    """
    raw = load_motion(MOTIONS / "amp_humanoid_walk.npy")
    walk = MotionClip(raw.name, raw.fps / 2, raw.root_pos[::2], raw.root_rot[::2], raw.dof_pos[::2], model=MODEL)
    return [walk, walk.slice(15, 50, name="walk_part")]


@pytest.fixture(scope="module")
def real_lib(real_clips) -> MotionLibrary:
    return MotionLibrary(real_clips, weights=[1.0, 3.0])


def frame_times(clip: MotionClip) -> torch.Tensor:
    return torch.arange(clip.num_frames, dtype=torch.float64) / clip.fps


# ---------------------------------------------------------------------------------------- interpolation
def test_state_at_frame_times_equals_clip_frames(real_lib, real_clips):
    for c, clip in enumerate(real_clips):
        t = frame_times(clip)
        s = real_lib.state_at(torch.full((len(t),), c), t)
        assert isinstance(s, MotionState)
        body_pos, body_rot = clip.body_states()
        np.testing.assert_allclose(s.root_pos.numpy(), clip.root_pos, atol=1e-5)
        assert_same_rotations(s.root_rot, torch.from_numpy(clip.root_rot))
        np.testing.assert_allclose(s.dof_pos.numpy(), clip.dof_pos, atol=1e-5)
        np.testing.assert_allclose(s.body_pos.numpy(), body_pos, atol=1e-5)
        assert_same_rotations(s.body_rot, torch.from_numpy(body_rot))
        # Velocities are the forward differences of the frames (the last frame repeats the previous one).
        vel = np.diff(clip.root_pos, axis=0) * clip.fps
        np.testing.assert_allclose(s.root_vel.numpy(), np.concatenate([vel, vel[-1:]]), atol=1e-3)
        dof_vel = np.diff(clip.dof_pos, axis=0) * clip.fps
        np.testing.assert_allclose(s.dof_vel.numpy(), np.concatenate([dof_vel, dof_vel[-1:]]), atol=1e-3)
        body_vel = np.diff(body_pos, axis=0) * clip.fps
        np.testing.assert_allclose(s.body_vel.numpy(), np.concatenate([body_vel, body_vel[-1:]]), atol=1e-3)


def test_state_at_midpoints_interpolates(real_lib, real_clips):
    clip = real_clips[0]
    t = (torch.arange(clip.num_frames - 1, dtype=torch.float64) + 0.5) / clip.fps
    ids = torch.zeros(len(t), dtype=torch.long)
    s = real_lib.state_at(ids, t)
    np.testing.assert_allclose(s.root_pos.numpy(), 0.5 * (clip.root_pos[:-1] + clip.root_pos[1:]), atol=1e-5)
    np.testing.assert_allclose(s.dof_pos.numpy(), 0.5 * (clip.dof_pos[:-1] + clip.dof_pos[1:]), atol=1e-5)
    # Slerp: the midpoint is half the geodesic distance from both neighbouring frames.
    q = torch.from_numpy(clip.root_rot).float()
    full = rot.quat_angle_between(q[:-1], q[1:])
    assert full.max() > 0.01  # the clip does rotate between frames, so the test is not vacuous
    torch.testing.assert_close(rot.quat_angle_between(q[:-1], s.root_rot), 0.5 * full, atol=2e-3, rtol=0)
    torch.testing.assert_close(rot.quat_angle_between(s.root_rot, q[1:]), 0.5 * full, atol=2e-3, rtol=0)
    # Bodies are FK of the interpolated root and hinges: close to, but not exactly, the frames' average.
    body_pos = clip.body_pos()
    mid = 0.5 * (body_pos[:-1] + body_pos[1:])
    gap = np.abs(s.body_pos.numpy() - mid).max()
    assert gap < 0.01, f"FK of the interpolated pose is {gap:.4f} m from the linear blend of body positions"
    fk_pos, fk_rot = real_lib.skeleton.forward_kinematics(s.root_pos, s.root_rot, s.dof_pos)
    torch.testing.assert_close(s.body_pos, fk_pos)
    torch.testing.assert_close(s.body_rot, fk_rot)


def test_times_are_clamped_to_the_clip(real_lib, real_clips):
    ids = torch.tensor([0, 0, 1])
    dur = real_lib.durations
    s = real_lib.state_at(ids, torch.tensor([-1.0, 100.0, float(dur[1]) + 0.5]))
    np.testing.assert_allclose(s.root_pos[0].numpy(), real_clips[0].root_pos[0], atol=1e-5)
    np.testing.assert_allclose(s.root_pos[1].numpy(), real_clips[0].root_pos[-1], atol=1e-5)
    np.testing.assert_allclose(s.root_pos[2].numpy(), real_clips[1].root_pos[-1], atol=1e-5)


# ---------------------------------------------------------------------------------------- velocities
@pytest.mark.parametrize("tilt", [0.0, 0.6])
def test_root_velocities_of_a_constant_motion(tilt):
    rate = 0.8
    lib = MotionLibrary([synthetic_clip(speed=1.0, yaw_rate=rate, tilt=tilt)])
    times = torch.linspace(0.0, float(lib.durations[0]), 97)
    s = lib.state_at(torch.zeros(97, dtype=torch.long), times)
    torch.testing.assert_close(s.root_vel, torch.tensor([1.0, 0.0, 0.0]).expand(97, 3), atol=1e-4, rtol=0)
    # World angular velocity: spinning about world z, whatever the body's tilt.
    torch.testing.assert_close(s.root_ang_vel, torch.tensor([0.0, 0.0, rate]).expand(97, 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(s.body_vel[:, 0], s.root_vel)
    torch.testing.assert_close(s.body_ang_vel[:, 0], s.root_ang_vel)


def test_dof_velocity_is_the_hinge_rate():
    lib = MotionLibrary([synthetic_clip(speed=0.0, dof_rate=0.5)])
    s = lib.state_at(torch.zeros(50, dtype=torch.long), torch.rand(50, generator=torch.Generator().manual_seed(1)))
    torch.testing.assert_close(s.dof_vel, torch.full((50, D), 0.5), atol=1e-4, rtol=0)
    torch.testing.assert_close(s.root_vel, torch.zeros(50, 3), atol=1e-6, rtol=0)


def test_body_velocities_match_motion_of_the_interpolated_bodies(real_lib):
    """body_vel ~ d/dt of body_pos from state_at (finite difference over a small step)."""
    ids = torch.zeros(64, dtype=torch.long)
    t = torch.rand(64, generator=torch.Generator().manual_seed(2)) * (float(real_lib.durations[0]) - 0.1)
    h = 1e-3
    a, b = real_lib.state_at(ids, t), real_lib.state_at(ids, t + h)
    fd = (b.body_pos - a.body_pos) / h
    # First-frame velocities vs the derivative of the FK path: equal up to the change within one frame.
    assert (fd - a.body_vel).norm(dim=-1).median() < 0.1
    assert a.body_vel.norm(dim=-1).median() > 0.5  # the walk moves: the comparison is meaningful


# ---------------------------------------------------------------------------------------- sampling
def test_weighted_clip_sampling_matches_weights():
    clips = [synthetic_clip(name=f"c{i}") for i in range(4)]
    lib = MotionLibrary(clips, weights=[1.0, 2.0, 5.0, 0.0])
    torch.testing.assert_close(lib.weights, torch.tensor([0.125, 0.25, 0.625, 0.0]))
    n = 40_000
    ids = lib.sample_clips(n, generator=torch.Generator().manual_seed(0))
    assert ids.dtype == torch.long and ids.shape == (n,)
    counts = torch.bincount(ids, minlength=4).double()
    assert counts[3] == 0
    expected = n * lib.weights[:3].double()
    chi2 = float(((counts[:3] - expected) ** 2 / expected).sum())
    assert chi2 < 13.8, f"chi-square {chi2:.1f} (2 dof, p = 0.001 threshold 13.8), counts {counts.tolist()}"


def test_sample_times_cover_the_truncated_range():
    lib = MotionLibrary([synthetic_clip(num_frames=31), synthetic_clip(num_frames=7)])  # 1.0 s and 0.2 s
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([0, 1]).repeat(2000)
    t = lib.sample_times(ids, truncate_time=0.5, generator=g)
    assert t[ids == 0].min() >= 0 and t[ids == 0].max() <= 0.5 + 1e-6 and t[ids == 0].max() > 0.45
    assert torch.all(t[ids == 1] == 0)  # 0.2 s clip shorter than the truncation: clamped at 0
    t = lib.sample_times(ids, generator=g)
    assert t[ids == 1].max() <= 0.2 + 1e-6 and t[ids == 1].max() > 0.19


# ---------------------------------------------------------------------------------------- AMP observations
def test_amp_obs_matches_amp_frame_obs_of_state(real_lib):
    g = torch.Generator().manual_seed(3)
    ids = real_lib.sample_clips(200, g)
    t = real_lib.sample_times(ids, generator=g)
    obs = real_lib.amp_obs_at(ids, t)
    s = real_lib.state_at(ids, t)
    key = s.body_pos[:, MODEL.key_body_ids]
    ref = amp_frame_obs(
        real_lib.skeleton, s.root_pos, s.root_rot, s.root_vel, s.root_ang_vel, s.dof_pos, s.dof_vel, key
    )
    assert obs.shape == (200, 125)
    torch.testing.assert_close(obs, ref)
    torch.testing.assert_close(obs[:, 0], s.root_pos[:, 2])


def test_amp_obs_is_invariant_to_heading_and_ground_position(real_clips):
    clip = real_clips[0]
    yaw = 1.1
    q = np.repeat(yaw_quat(np.array([yaw])), clip.num_frames, 0)
    moved = MotionClip(
        "turned",
        clip.fps,
        rot.quat_rotate(torch.from_numpy(q), torch.from_numpy(clip.root_pos)).numpy() + np.array([3.0, -2.0, 0.0]),
        quat_mul_np(q, clip.root_rot),
        clip.dof_pos,
        model=MODEL,
    )
    lib = MotionLibrary([clip, moved])
    t = torch.rand(100, generator=torch.Generator().manual_seed(4)) * float(lib.durations[0])
    a = lib.amp_obs_at(torch.zeros(100, dtype=torch.long), t)
    b = lib.amp_obs_at(torch.ones(100, dtype=torch.long), t)
    assert (lib.state_at(torch.zeros(1, dtype=torch.long), t[:1]).root_pos
            - lib.state_at(torch.ones(1, dtype=torch.long), t[:1]).root_pos).norm() > 1.0
    torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4)


def test_amp_window_order_shape_and_clipping():
    clip = synthetic_clip(num_frames=61, fps=30.0, speed=1.0)
    clip.root_pos[:, 2] = 0.8 + 0.1 * np.arange(61) / 30.0  # height rises 0.1 m/s: a clock in obs[..., 0]
    lib = MotionLibrary([clip])
    dt = 1.0 / 30.0
    ids = torch.zeros(3, dtype=torch.long)
    end = torch.tensor([1.5, 1.0, 0.1])
    w = lib.amp_obs_window(ids, end, 10, dt)
    assert w.shape == (3, 10, 125)
    for k in range(10):
        torch.testing.assert_close(w[:, k], lib.amp_obs_at(ids, (end - k * dt).clamp_min(0)))
    assert torch.all(w[:2, :-1, 0] > w[:2, 1:, 0])  # slot 0 is the newest frame
    torch.testing.assert_close(w[0, :, 0], 0.8 + 0.1 * (1.5 - dt * torch.arange(10.0)), atol=1e-5, rtol=0)
    # End time 0.1 s: slots 3..9 fall before the start and repeat the first frame.
    first = lib.amp_obs_at(ids[:1], torch.zeros(1))
    torch.testing.assert_close(w[2, 3:], first.expand(7, 125))
    assert not torch.allclose(w[2, 2], first[0])


def test_sample_amp_windows_end_times(real_lib):
    g = torch.Generator().manual_seed(5)
    dt = 1.0 / 30.0
    ids, end, w = real_lib.sample_amp_windows(300, 10, dt, generator=g)
    assert w.shape == (300, 10, 125)
    dur = real_lib.durations[ids]
    assert torch.all(end <= dur + 1e-6) and torch.all(end >= torch.clamp(dur, max=9 * dt) - 1e-6)
    torch.testing.assert_close(w, real_lib.amp_obs_window(ids, end, 10, dt))


def test_encoder_and_demo_windows(real_lib):
    dt = 1.0 / 30.0
    s = real_lib.sample_encoder_and_demo_windows(256, enc_steps=60, disc_steps=10, dt=dt,
                                                 generator=torch.Generator().manual_seed(6))
    assert s.enc_windows.shape == (256, 60, 125) and s.demo_windows.shape == (256, 10, 125)
    dur = real_lib.durations[s.clip_ids]
    assert torch.all(s.enc_end_times <= dur + 1e-6) and torch.all(s.enc_end_times >= dur.clamp(max=59 * dt) - 1e-6)
    span = (dur.clamp(max=59 * dt) - 10 * dt).clamp_min(0)
    back = s.enc_end_times - s.demo_end_times
    assert torch.all(back >= -1e-6) and torch.all(back <= span + 1e-6)
    assert back.max() > 0.5 * span.max()  # the demo window really moves inside the encoder window
    torch.testing.assert_close(s.demo_windows, real_lib.amp_obs_window(s.clip_ids, s.demo_end_times, 10, dt))
    both = torch.bincount(s.clip_ids, minlength=2).double() / 256
    assert both[1] > both[0]  # weights 1 : 3


# ---------------------------------------------------------------------------------------- info and errors
def test_info_and_summary(real_lib, real_clips):
    assert real_lib.num_clips == 2
    assert real_lib.clip_names == ["amp_humanoid_walk", "walk_part"]
    torch.testing.assert_close(real_lib.durations, torch.tensor([c.duration for c in real_clips], dtype=torch.float32))
    assert real_lib.total_duration == pytest.approx(sum(c.duration for c in real_clips))
    df = real_lib.summary()
    assert list(df.columns) == [
        "name", "category", "tags", "frames", "fps", "duration_s", "weight", "description", "source", "licence"
    ]
    assert df["frames"].tolist() == [c.num_frames for c in real_clips]
    assert df["weight"].tolist() == pytest.approx([0.25, 0.75])


def test_bad_inputs_raise_clear_errors(real_lib):
    with pytest.raises(IndexError, match="clip ids must be in"):
        real_lib.state_at(torch.tensor([0, 2]), torch.zeros(2))
    with pytest.raises(ValueError, match="same shape"):
        real_lib.state_at(torch.tensor([0, 1]), torch.zeros(3))
    with pytest.raises(ValueError, match="must not all be zero"):
        MotionLibrary([synthetic_clip()], weights=[0.0])
    with pytest.raises(ValueError, match=">= 0"):
        MotionLibrary([synthetic_clip(), synthetic_clip()], weights=[1.0, -1.0])
    with pytest.raises(ValueError, match="at least one clip"):
        MotionLibrary([])


def test_repeated_frames_warn():
    clip = synthetic_clip(num_frames=20, speed=1.0, dof_rate=0.5)
    doubled = MotionClip("doubled", 60.0, clip.root_pos.repeat(2, 0), clip.root_rot.repeat(2, 0),
                         clip.dof_pos.repeat(2, 0), model=MODEL)
    with pytest.warns(UserWarning, match="'doubled': frames come in identical pairs"):
        MotionLibrary([doubled])
    # A held pose (a run of identical frames) is not frame doubling: no warning.
    held = MotionClip("held", 30.0, np.concatenate([clip.root_pos, clip.root_pos[-1:].repeat(15, 0)]),
                      np.concatenate([clip.root_rot, clip.root_rot[-1:].repeat(15, 0)]),
                      np.concatenate([clip.dof_pos, clip.dof_pos[-1:].repeat(15, 0)]), model=MODEL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MotionLibrary([held])


# ---------------------------------------------------------------------------------------- manifests
def write_manifest(folder: Path, body: str) -> Path:
    path = folder / "motions.yaml"
    path.write_text(body)
    return path


@pytest.fixture
def clip_folder(tmp_path) -> Path:
    (tmp_path / "clips").mkdir()
    synthetic_clip(name="walkish", speed=1.0).save(tmp_path / "clips" / "a.npz")
    synthetic_clip(name="spin", speed=0.0, yaw_rate=1.0, num_frames=16).save(tmp_path / "clips" / "b.npz")
    return tmp_path


def test_manifest_loads_and_renormalises(clip_folder):
    path = write_manifest(
        clip_folder,
        "motions:\n"
        "  - {file: clips/a.npz, weight: 3, category: locomotion, tags: [gait, slow], description: walk, source: test,"
        " licence: CC0}\n"
        "  - {file: clips/b.npz, weight: 1, text: pass}\n"
        f"  - {{file: {MOTIONS / 'amp_humanoid_walk.npy'}, weight: 0, category: locomotion}}\n",
    )
    with pytest.warns(UserWarning, match="'amp_humanoid_walk'.*identical pairs"):  # 30 fps data stored at 60 fps
        lib = MotionLibrary.from_manifest(path)
    assert lib.clip_names == ["walkish", "spin", "amp_humanoid_walk"]
    torch.testing.assert_close(lib.weights, torch.tensor([0.75, 0.25, 0.0]))
    assert lib.categories == ["locomotion", "", "locomotion"] and lib.descriptions[0] == "walk"
    df = lib.summary()
    assert df.loc[0, "tags"] == "gait, slow" and df.loc[1, "tags"] == ""
    assert df.loc[0, "source"] == "test" and df.loc[0, "licence"] == "CC0" and df.loc[1, "source"] == "synthetic"
    assert set(lib.sample_clips(500, torch.Generator().manual_seed(0)).tolist()) == {0, 1}


@pytest.mark.parametrize(
    "entries, match",
    [
        ("  - {file: clips/a.npz, weight: 1}\n  - {file: clips/missing.npz, weight: 1}\n",
         r"motions\[1\] \(file 'clips/missing.npz'\).*no such file"),
        ("  - {file: clips/a.npz, weight: -2}\n",
         r"motions\[0\] \(file 'clips/a.npz'\).*'weight' must be a finite number >= 0"),
        ("  - {file: clips/a.npz, weight: heavy}\n", r"motions\[0\].*'weight' must be"),
        ("  - {file: clips/a.npz, weight: 0}\n  - {file: clips/b.npz, weight: 0}\n", "all 2 weights are zero"),
        ("  - {file: clips/a.npz}\n", r"motions\[0\] \(file 'clips/a.npz'\).*missing required key\(s\) \['weight'\]"),
        ("  - {weight: 1}\n", r"motions\[0\].*missing required key\(s\) \['file'\]"),
        ("  - {file: clips/a.npz, weight: 1, wieght: 2}\n", r"motions\[0\].*unknown key\(s\) \['wieght'\]"),
        ("  - clips/a.npz\n", r"motions\[0\].*must be a mapping"),
        ("  - {file: clips/a.npz, weight: 1, tags: gait}\n", r"motions\[0\].*'tags' must be a list of strings"),
        ("  - {file: clips/a.npz, weight: 1, category: 3}\n", r"motions\[0\].*'category' must be a string"),
        ("  - {file: clips/a.npz, weight: 1, description: [a]}\n", r"motions\[0\].*'description' must be a string"),
        ("  - {file: clips/a.npz, weight: true}\n", r"motions\[0\].*'weight' must be a finite number >= 0, got True"),
        ("  - {file: clips/a.npz, weight: .nan}\n", r"motions\[0\].*'weight' must be a finite number"),
        ("  - {file: clips/a.npz, weight: 1.0e400}\n", r"motions\[0\].*'weight' must be a finite number"),
        ("  - {file: [clips/a.npz], weight: 1}\n", r"motions\[0\].*'file' must be a non-empty path string"),
        ("  - {file: clips/a.npz, weight: 1, 3: x}\n", r"motions\[0\].*unknown key\(s\) \[3\]"),
        ("  - {file: clips/broken.npz, weight: 1}\n",
         r"motions\[0\] \(file 'clips/broken.npz'\).*cannot load .*broken.npz: not a readable .npz archive"),
    ],
)
def test_manifest_errors_name_the_entry(clip_folder, entries, match):
    (clip_folder / "clips" / "broken.npz").write_bytes(b"PK\x03\x04 truncated")
    path = write_manifest(clip_folder, "motions:\n" + entries)
    with pytest.raises(ManifestError, match=match) as info:
        MotionLibrary.from_manifest(path)
    assert str(path) in str(info.value)


def test_manifest_file_level_errors(tmp_path):
    with pytest.raises(ManifestError, match="no such manifest"):
        MotionLibrary.from_manifest(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError, match="top-level key 'motions'"):
        MotionLibrary.from_manifest(write_manifest(tmp_path, "clips: []\n"))
    with pytest.raises(ManifestError, match="not valid YAML"):
        MotionLibrary.from_manifest(write_manifest(tmp_path, "motions: [\n"))
    with pytest.raises(ManifestError, match="not valid YAML"):  # PyYAML recurses: RecursionError
        MotionLibrary.from_manifest(write_manifest(tmp_path, "motions: " + "[" * 50_000 + "]" * 50_000 + "\n"))
    with pytest.raises(ManifestError, match=r"unknown top-level key\(s\) \['extra'\]"):
        MotionLibrary.from_manifest(write_manifest(tmp_path, "motions:\n  - {file: a.npz, weight: 1}\nextra: 1\n"))
    (tmp_path / "latin1.yaml").write_bytes("motions:\n  - {file: caf\xe9.npz, weight: 1}\n".encode("latin-1"))
    with pytest.raises(ManifestError, match="not UTF-8 text"):
        MotionLibrary.from_manifest(tmp_path / "latin1.yaml")
    with pytest.raises(ManifestError, match="MAX_MANIFEST_BYTES"):
        MotionLibrary.from_manifest(write_manifest(tmp_path, "# padding\n" * 200_000))
