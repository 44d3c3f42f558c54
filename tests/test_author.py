"""Keyframe authoring (anyskill.motion.author) and the ten authored gesture clips."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from anyskill.humanoid.model import load_humanoid
from anyskill.motion.author import (
    CATEGORIES,
    KeyPose,
    author_clip,
    mirrored,
    monotone_cubic,
    sole_corners,
    validate_clip,
)
from anyskill.motion.authored_clips import authored_clips, authored_specs
from anyskill.motion.clip import MotionClip, load_npz

NAMES = [
    "idle_stand",
    "wave_right_hand",
    "wave_both_hands",
    "raise_both_arms",
    "squat",
    "bow",
    "punch",
    "kick",
    "arms_crossed",
    "jumping_jack",
]


@pytest.fixture(scope="module")
def model():
    return load_humanoid()


@pytest.fixture(scope="module")
def clips(model) -> dict[str, MotionClip]:
    return {c.name: c for c in authored_clips(model)}


@pytest.fixture(scope="module")
def specs():
    return {s.name: s for s in authored_specs()}


def body(clip: MotionClip, name: str) -> np.ndarray:
    """(T, 3) m world positions of one body."""
    return clip.body_pos()[:, clip.model.body_index(name)]


def frame(clip: MotionClip, t: float) -> int:
    return int(round(t * clip.fps))


def test_all_ten_clips_are_authored(clips):
    assert sorted(clips) == sorted(NAMES)


# ---------------------------------------------------------------------------------------------- per clip


@pytest.mark.parametrize("name", NAMES)
def test_clip_shape_meta_and_limits(clips, specs, model, name):
    clip, spec = clips[name], specs[name]
    assert clip.fps == 30.0
    assert 2.0 <= clip.duration <= 4.0
    assert clip.num_frames == round(spec.keys[-1].time * 30) + 1
    for key in ("root_pos", "root_rot", "dof_pos"):
        assert np.all(np.isfinite(getattr(clip, key)))
    assert np.all(clip.dof_pos >= model.dof_lower - 1e-12) and np.all(clip.dof_pos <= model.dof_upper + 1e-12)
    assert clip.meta["source"] == "authored" and clip.meta["authored"] is True
    assert clip.meta["licence"] == "BSD-3-Clause (this project)"
    assert clip.meta["tool"] == "anyskill.motion.author"
    assert clip.meta["description"] and clip.meta["category"] in CATEGORIES
    assert clip.meta["clamped"] == {}, "authored keys should lie inside the joint limits"


@pytest.mark.parametrize("name", NAMES)
def test_soles_on_ground_checked_with_mujoco(clips, model, name):
    """Lowest foot-box corner at z = 0 (±1 cm) on every frame, measured by MuJoCo's own kinematics."""
    clip = clips[name]
    mj = model.mj_model()
    data = mujoco.MjData(mj)
    geoms = [mujoco.mj_name2id(mj, mujoco.mjtObj.mjOBJ_GEOM, g) for g in ("right_foot", "left_foot")]
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    lowest = []
    for t in range(clip.num_frames):
        data.qpos[:3] = clip.root_pos[t]
        data.qpos[3:7] = clip.root_rot[t]
        data.qpos[7:] = clip.dof_pos[t]
        mujoco.mj_kinematics(mj, data)
        corners = [data.geom_xpos[g] + (signs * mj.geom_size[g]) @ data.geom_xmat[g].reshape(3, 3).T for g in geoms]
        lowest.append(min(c[:, 2].min() for c in corners))
    assert np.max(np.abs(lowest)) < 0.01


@pytest.mark.parametrize("name", NAMES)
def test_validation_report_is_clean(clips, name):
    report = validate_clip(clips[name])
    assert report.problems() == []
    assert 0.1 < report.max_joint_speed < 15.0
    assert abs(report.sole_min) < 1e-6 and abs(report.sole_max) < 1e-6
    assert report.com_inside_fraction == 1.0, "standing gestures keep the centre of mass above the feet"


@pytest.mark.parametrize("name", NAMES)
def test_save_load_round_trip_is_exact(clips, model, tmp_path, name):
    clip = clips[name]
    back = load_npz(clip.save(tmp_path / f"{name}.npz"), model)
    assert back.name == clip.name and back.fps == clip.fps and back.meta == clip.meta
    for key in ("root_pos", "root_rot", "dof_pos"):
        assert np.array_equal(getattr(back, key), getattr(clip, key))


def test_looping_clips_end_where_they_start(clips, specs):
    for name, spec in specs.items():
        if spec.loop:
            clip = clips[name]
            assert np.allclose(clip.dof_pos[0], clip.dof_pos[-1]) and np.allclose(clip.root_pos[0], clip.root_pos[-1])


# ---------------------------------------------------------------------------------------------- semantics


def test_idle_stand_moves_only_a_little(clips):
    pos = clips["idle_stand"].body_pos()
    drift = np.linalg.norm(pos - pos[:1], axis=-1).max()
    assert 0.005 < drift < 0.1


def test_wave_right_hand_above_shoulder_and_side_to_side(clips):
    clip = clips["wave_right_hand"]
    window = slice(frame(clip, 1.0), frame(clip, 2.2) + 1)
    hand, shoulder = body(clip, "right_hand")[window], body(clip, "right_upper_arm")[window]
    assert np.all(hand[:, 2] > shoulder[:, 2])
    lateral = hand[:, 1]
    assert lateral.max() - lateral.min() > 0.15
    turns = np.count_nonzero(np.diff(np.sign(np.diff(lateral))) != 0)
    assert turns >= 3, "the hand should go back and forth several times"
    assert np.allclose(body(clip, "left_hand")[window, 2], body(clip, "left_hand")[0, 2], atol=0.02)


def test_wave_both_hands_is_mirror_symmetric(clips):
    clip = clips["wave_both_hands"]
    f = frame(clip, 1.3)
    right, left = body(clip, "right_hand")[f], body(clip, "left_hand")[f]
    assert right[2] > body(clip, "right_upper_arm")[f, 2] and left[2] > body(clip, "left_upper_arm")[f, 2]
    assert np.allclose(right * [1, -1, 1], left, atol=1e-6)


def test_raise_both_arms_hands_above_head(clips):
    clip = clips["raise_both_arms"]
    f = frame(clip, 1.5)
    head_top = body(clip, "head")[f, 2] + 0.175 + 0.095
    assert body(clip, "right_hand")[f, 2] > head_top and body(clip, "left_hand")[f, 2] > head_top


def test_squat_drops_pelvis_with_arms_forward(clips):
    clip = clips["squat"]
    f = frame(clip, 1.5)
    assert clip.root_pos[0, 2] - clip.root_pos[f, 2] > 0.2
    assert body(clip, "right_hand")[f, 0] - clip.root_pos[f, 0] > 0.3


def test_bow_moves_head_forward_and_down(clips):
    clip = clips["bow"]
    head = body(clip, "head")
    f = frame(clip, 1.6)
    assert head[f, 0] - head[0, 0] > 0.1 and head[0, 2] - head[f, 2] > 0.1


def test_punch_reaches_forward(clips):
    clip = clips["punch"]
    reach = body(clip, "right_hand")[:, 0] - clip.root_pos[:, 0]
    assert reach.max() > 0.4
    f = int(np.argmax(reach))
    assert body(clip, "left_hand")[f, 2] > body(clip, "left_upper_arm")[f, 2], "left hand stays up in guard"


def test_kick_raises_right_foot_above_left_knee(clips):
    clip = clips["kick"]
    gap = body(clip, "right_foot")[:, 2] - body(clip, "left_shin")[:, 2]
    assert gap.max() > 0.1
    f = int(np.argmax(gap))
    assert body(clip, "right_foot")[f, 0] - clip.root_pos[f, 0] > 0.5, "the kick goes forward"


def test_arms_crossed_hands_on_opposite_sides(clips):
    clip = clips["arms_crossed"]
    f = frame(clip, 2.0)
    right, left = body(clip, "right_hand")[f], body(clip, "left_hand")[f]
    assert right[1] > 0.0 > left[1]
    chest_low, shoulder = clip.root_pos[f, 2] + 0.15, body(clip, "right_upper_arm")[f, 2]
    for hand in (right, left):
        assert hand[0] - clip.root_pos[f, 0] > 0.1 and chest_low < hand[2] < shoulder


def test_jumping_jack_spreads_feet_and_raises_hands(clips):
    clip = clips["jumping_jack"]
    f = frame(clip, 0.75)
    feet = abs(body(clip, "left_foot")[f, 1] - body(clip, "right_foot")[f, 1])
    shoulders = abs(body(clip, "left_upper_arm")[f, 1] - body(clip, "right_upper_arm")[f, 1])
    assert feet > shoulders
    head_top = body(clip, "head")[f, 2] + 0.175 + 0.095
    assert body(clip, "right_hand")[f, 2] > head_top and body(clip, "left_hand")[f, 2] > head_top


# ---------------------------------------------------------------------------------------------- the tool


def test_monotone_cubic_passes_through_keys_without_overshoot():
    rng = np.random.default_rng(0)
    key_t = np.cumsum(rng.uniform(0.2, 1.0, size=8))
    values = rng.uniform(-2.0, 2.0, size=(8, 5))
    assert np.allclose(monotone_cubic(key_t, key_t, values), values, atol=1e-12)
    t = np.linspace(key_t[0], key_t[-1], 2001)
    out = monotone_cubic(t, key_t, values)
    seg = np.clip(np.searchsorted(key_t, t, side="right") - 1, 0, len(key_t) - 2)
    lo = np.minimum(values[seg], values[seg + 1]) - 1e-12
    hi = np.maximum(values[seg], values[seg + 1]) + 1e-12
    assert np.all((out >= lo) & (out <= hi))
    # C1: the velocity just before and just after each interior key agree
    eps = 1e-7
    inner = key_t[1:-1]
    left = (monotone_cubic(inner - eps, key_t, values) - monotone_cubic(inner - 2 * eps, key_t, values)) / eps
    right = (monotone_cubic(inner + 2 * eps, key_t, values) - monotone_cubic(inner + eps, key_t, values)) / eps
    assert np.allclose(left, right, atol=1e-3)
    assert np.abs(left).max() > 0.1, "interior velocities are not all zero (not a stop at every key)"


def test_monotone_cubic_loop_has_continuous_velocity_at_seam():
    key_t = np.array([0.0, 0.5, 1.2, 2.0])
    values = np.array([[0.0], [1.0], [-0.5], [0.0]])
    dt = 1e-4
    start = monotone_cubic(np.array([0.0, dt]), key_t, values, loop=True)
    end = monotone_cubic(np.array([2.0 - dt, 2.0]), key_t, values, loop=True)
    v_start, v_end = (start[1] - start[0]) / dt, (end[1] - end[0]) / dt
    assert abs(v_start[0]) > 0.1 and np.allclose(v_start, v_end, rtol=1e-2)


def test_author_clip_hits_key_angles_and_clamps_to_limits(model):
    keys = [
        KeyPose(0.0, {}),
        KeyPose(0.5, {"right_elbow": -90.0, "right_knee": 200.0}),  # knee limit is 160 deg
        KeyPose(1.0, {}),
    ]
    clip = author_clip("probe", keys, model=model)
    elbow, knee = model.dof_names.index("right_elbow"), model.dof_names.index("right_knee")
    assert clip.num_frames == 31
    assert np.isclose(clip.dof_pos[15, elbow], np.radians(-90.0))
    assert np.isclose(clip.dof_pos[15, knee], model.dof_upper[knee])
    assert clip.dof_pos[:, knee].max() <= model.dof_upper[knee]
    assert clip.meta["clamped"] == {"right_knee": pytest.approx(40.0, abs=1e-3)}
    assert validate_clip(clip).clamped == clip.meta["clamped"]


def test_root_pitch_key_tilts_pelvis_and_height_is_solved(model):
    clip = author_clip("tilt", [KeyPose(0.0), KeyPose(1.0, root_pitch=30.0)], model=model)
    w, y = clip.root_rot[-1, 0], clip.root_rot[-1, 2]
    assert np.isclose(2 * np.degrees(np.arctan2(y, w)), 30.0)
    low = sole_corners(model, clip.root_pos, clip.root_rot, clip.dof_pos)[..., 2].min(axis=(1, 2))
    assert np.allclose(low, 0.0, atol=1e-9)
    assert np.isclose(clip.root_pos[0, 2], 0.421546 + 0.40987 + 0.05, atol=1e-6), "zero pose: legs + sole depth"


def test_root_offsets_move_the_anchored_body(model):
    keys = [KeyPose(0.0, {"right_knee": 30.0}), KeyPose(1.0, {"right_knee": 0.0}, root_x=0.2, root_y=-0.1)]
    clip = author_clip("shift", keys, model=model, anchor="left_foot")
    assert np.allclose(clip.root_pos[-1, :2] - clip.root_pos[0, :2], [0.2, -0.1], atol=1e-9)
    left = sole_corners(model, clip.root_pos, clip.root_rot, clip.dof_pos)[:, 1, :, :2].mean(axis=1)
    assert np.allclose(left[-1] - left[0], [0.2, -0.1], atol=1e-9)


def test_rigid_lean_puts_centre_of_mass_outside_support(model):
    """A whole-body 30 deg forward lean pivots on the toes: the balance check must notice."""
    clip = author_clip("lean", [KeyPose(0.0), KeyPose(1.0, root_pitch=30.0)], model=model)
    report = validate_clip(clip)
    assert report.com_outside_support_max > 0.1 and report.com_inside_fraction < 1.0


def test_anchor_feet_removes_foot_sliding(model, specs):
    keys = specs["squat"].keys
    free = validate_clip(author_clip("squat_free", keys, model=model, anchor=None))
    anchored = validate_clip(author_clip("squat_anchored", keys, model=model, anchor="feet"))
    assert free.max_foot_slide > 0.1 and anchored.max_foot_slide < 1e-6


def test_validation_flags_a_floating_clip(clips):
    clip = clips["bow"]
    lifted = MotionClip(clip.name, clip.fps, clip.root_pos + [0, 0, 0.05], clip.root_rot, clip.dof_pos,
                        model=clip.model)
    report = validate_clip(lifted)
    assert any("off the ground" in p for p in report.problems())
    assert report.airborne_frames == clip.num_frames and np.isnan(report.com_inside_fraction)


def test_mirrored_pose_is_mirror_image(model):
    right = {"right_shoulder_x": -70.0, "right_shoulder_y": -40.0, "right_shoulder_z": 30.0, "right_elbow": -60.0,
             "right_hip_x": -20.0, "right_hip_y": -50.0, "right_hip_z": 15.0, "right_knee": 40.0}
    clip = author_clip("sym", [KeyPose(0.0), KeyPose(1.0, {**right, **mirrored(right)})], model=model)
    pos = clip.body_pos()[-1]
    for side in ("hand", "lower_arm", "foot", "shin"):
        right_pos, left_pos = pos[model.body_index(f"right_{side}")], pos[model.body_index(f"left_{side}")]
        assert np.allclose(right_pos * [1, -1, 1], left_pos, atol=1e-9)


def test_unknown_dof_name_is_a_clear_error(model):
    with pytest.raises(ValueError, match="right_elbo") as err:
        author_clip("bad", [KeyPose(0.0), KeyPose(1.0, {"right_elbo": -30.0})], model=model)
    assert "valid DoF names" in str(err.value) and "right_elbow" in str(err.value)


@pytest.mark.parametrize(
    "keys, message",
    [
        ([KeyPose(0.0)], "at least 2 key poses"),
        ([KeyPose(0.0), KeyPose(1.0), KeyPose(0.5)], "strictly increasing"),
        ([KeyPose(0.0), KeyPose(0.0)], "strictly increasing"),
    ],
)
def test_bad_key_lists_are_rejected(model, keys, message):
    with pytest.raises(ValueError, match=message):
        author_clip("bad", keys, model=model)


def test_loop_needs_closing_key_and_anchor_must_be_known(model):
    with pytest.raises(ValueError, match="closing key"):
        author_clip("bad", [KeyPose(0.0), KeyPose(1.0, {"neck_y": 10.0})], loop=True, model=model)
    with pytest.raises(ValueError, match="anchor"):
        author_clip("bad", [KeyPose(0.0), KeyPose(1.0)], model=model, anchor="hands")
