"""Rollout metrics (anyskill.eval) on constructed trajectories whose answer is known."""

import json
import math

import mujoco
import numpy as np
import pytest
import torch

from anyskill.eval.clip_score import clip_score
from anyskill.eval.physics import (
    HIGH_JERK,
    fall_rate,
    foot_sliding,
    frame_interval,
    high_jerk_fraction,
    jerk,
    physics_metrics,
)
from anyskill.eval.replay import replay
from anyskill.eval.rollout_metrics import rollout_metrics
from anyskill.hlc.rollout import RolloutResult
from anyskill.reward.clip_model import ClipModel, ClipSpec
from anyskill.sim.scene import get_scene

FPS = 30.0


def _times(n: int) -> np.ndarray:
    return np.arange(n) / FPS


@pytest.fixture(scope="module")
def standing_height(model) -> float:
    """Root height at which the straight pose's soles touch the floor, from MuJoCo's geometry (not the replay)."""
    m = model.mj_model()
    d = mujoco.MjData(m)
    d.qpos[:3] = (0, 0, 1.0)
    d.qpos[3] = 1.0
    mujoco.mj_kinematics(m, d)
    foot = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "right_foot")
    return 1.0 - (d.geom_xpos[foot, 2] - m.geom_size[foot, 2])


def _pose(model, root_xyz, quat=(1.0, 0, 0, 0), dofs: dict[str, float] | None = None) -> np.ndarray:
    q = np.zeros(7 + model.num_dofs)
    q[:3], q[3:7] = root_xyz, quat
    for name, angle in (dofs or {}).items():
        q[7 + model.dof_names.index(name)] = angle
    return q


def test_foot_sliding_on_arrays():
    t = _times(11)
    foot = np.zeros((11, 2, 3))
    foot[:, 0, 0] = 0.5 * t  # one foot slides along x at 0.5 m/s, the other stays
    foot[:, 0, 1] = 0.3  # a constant sideways offset is no speed
    contact = np.ones((11, 2), dtype=bool)
    assert foot_sliding(t, foot[:, :1], contact[:, :1]) == pytest.approx(0.5)
    assert foot_sliding(t, foot, contact) == pytest.approx(0.25)  # mean over both feet's planted intervals
    contact[:, 1] = False
    assert foot_sliding(t, foot, contact) == pytest.approx(0.5)
    foot[:, 0, 2] = 5.0 * t  # vertical motion does not count
    assert foot_sliding(t, foot, contact) == pytest.approx(0.5)
    assert math.isnan(foot_sliding(t, foot, np.zeros((11, 2), dtype=bool)))  # never on the floor: undefined


def test_foot_sliding_and_penetration_from_the_simulation(model, standing_height):
    t = _times(10)
    sliding = np.stack([_pose(model, (0.5 * s, 0.0, standing_height)) for s in t])  # feet on the floor, 0.5 m/s
    row = physics_metrics(t, sliding)
    assert row["foot_sliding_m_s"] == pytest.approx(0.5, abs=1e-9)
    assert row["penetration_max_m"] == pytest.approx(0.0, abs=1e-9)

    sunk = np.stack([_pose(model, (0, 0, standing_height - 0.02))] * 10)  # 2 cm into the floor, standing still
    row = physics_metrics(t, sunk)
    assert row["penetration_max_m"] == pytest.approx(0.02, abs=1e-9)
    assert row["penetration_mean_m"] == pytest.approx(0.02, abs=1e-9)
    assert row["foot_sliding_m_s"] == pytest.approx(0.0, abs=1e-9)

    half = sunk.copy()
    half[5:, 2] = standing_height  # 2 cm deep for 5 frames, on the floor for 5
    assert physics_metrics(t, half)["penetration_mean_m"] == pytest.approx(0.01, abs=1e-9)

    hovering = sliding.copy()
    hovering[:, 2] += 0.05  # above the contact tolerance: the feet are in the air, nothing slides
    row = physics_metrics(t, hovering)
    assert math.isnan(row["foot_sliding_m_s"]) and row["penetration_max_m"] == 0.0


def test_replay_matches_the_simulator_bodies(model):
    from anyskill.sim.mujoco_backend import MujocoBackend

    rng = np.random.default_rng(0)
    backend = MujocoBackend(1, model)
    quat = rng.normal(size=4)
    dofs = rng.uniform(model.dof_lower, model.dof_upper)
    z3 = torch.zeros(1, 3)
    backend.set_state(torch.zeros(1, dtype=torch.long), torch.tensor([[0.3, -0.2, 1.1]]),
                      torch.tensor(quat / np.linalg.norm(quat))[None], z3, z3, torch.tensor(dofs)[None],
                      torch.zeros(1, model.num_dofs))
    rep = replay(backend.qpos().numpy())
    assert rep.body_names == model.body_names
    np.testing.assert_allclose(rep.body_pos[0], backend.body_pos()[0].numpy(), atol=1e-5)


def test_jerk_of_polynomial_trajectories():
    t = _times(40)
    a = np.array([0.3, -2.0, 9.81])
    const_acc = np.array([1.0, 2.0, 0.9]) + np.outer(t, [0.4, 0.0, -1.0]) + 0.5 * np.outer(t**2, a)
    body_pos = np.stack([const_acc, const_acc + 0.1], axis=1)  # (T, 2, 3)
    assert np.abs(jerk(t, body_pos)).max() < 1e-6  # constant acceleration: zero jerk

    c = np.array([1.0, 0.0, 0.0])
    cubic = np.outer(t**3, c)[:, None]  # p = c t^3: jerk = 6 |c| everywhere
    np.testing.assert_allclose(jerk(t, cubic), 6.0, rtol=1e-6)


def test_high_jerk_fraction_counts_frames_with_a_jerky_body():
    body_jerk = np.zeros((10, 3))
    body_jerk[2, 1] = HIGH_JERK * 1.5
    body_jerk[7, 0] = body_jerk[7, 2] = HIGH_JERK * 3  # two bodies, one frame
    body_jerk[4, 0] = HIGH_JERK * 0.99
    assert high_jerk_fraction(body_jerk) == pytest.approx(0.2)
    assert high_jerk_fraction(body_jerk, threshold=0.5 * HIGH_JERK) == pytest.approx(0.3)


def test_times_must_be_evenly_spaced():
    with pytest.raises(ValueError, match="constant step"):
        frame_interval(np.array([0.0, 0.1, 0.3]))
    assert frame_interval(_times(5)) == pytest.approx(1 / FPS)


def test_falls(model, standing_height):
    t = _times(12)
    standing = np.stack([_pose(model, (0, 0, standing_height))] * 12)
    lying = standing.copy()
    lying[6:, :3] = (0.0, 0.0, 0.1)  # from frame 6 on, the whole body lies on its back on the floor
    lying[6:, 3:7] = (math.cos(math.pi / 4), 0.0, -math.sin(math.pi / 4), 0.0)
    fell = physics_metrics(t, lying)
    assert fell["fell"] and fell["fall_time_s"] == pytest.approx(t[6])
    still = physics_metrics(t, standing)
    assert not still["fell"] and math.isnan(still["fall_time_s"])
    assert fall_rate([fell["fell"], still["fell"], False, False]) == 0.25
    with pytest.raises(ValueError):
        fall_rate([])


def test_self_collision(model, standing_height):
    t = _times(8)
    frames = [_pose(model, (0, 0, standing_height)) for _ in t]
    for k in range(4, 8):  # right thigh swung inwards through the left one (beyond the joint limit on purpose)
        frames[k] = _pose(model, (0, 0, standing_height), dofs={"right_hip_x": 0.6})
    row = physics_metrics(t, np.stack(frames))
    assert row["self_collision_fraction"] == pytest.approx(0.5)
    assert row["self_collision_max_m"] > 0.01
    assert ("right_thigh", "left_thigh") in replay(np.stack(frames)).self_pairs
    rest = physics_metrics(t, np.stack(frames[:4] * 2))
    assert rest["self_collision_fraction"] == 0.0 and rest["self_collision_pairs"] == 0


def test_qpos_width_must_match_the_model(model):
    with pytest.raises(ValueError, match="qpos must be"):
        replay(np.zeros((4, 7 + model.num_dofs + 7)))


TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 224, "layers": 1, "width": 64, "patch_size": 32,
                                             "head_width": 32},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def clip_random(tmp_path_factory):
    """A one-layer CLIP with random weights (CLIP's tokenizer and preprocessing): the arithmetic of CLIP_S is
    checked, not its meaning."""
    import open_clip

    config = tmp_path_factory.mktemp("clip") / "anyskill-tiny-test.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    return ClipModel(ClipSpec(model="anyskill-tiny-test", weights="random"))


def test_clip_score_is_100_times_the_mean_cosine(clip_random):
    gen = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 64, 80, 3), generator=gen, dtype=torch.uint8)
    model = clip_random.model
    with torch.no_grad():
        img = model.encode_image(clip_random.preprocess(frames)).float()
        txt = model.encode_text(clip_random.tokenizer(["a person kicks"])).float()
    cos = torch.nn.functional.cosine_similarity(img, txt, dim=-1)
    assert clip_score(frames, "a person kicks", clip_random) == pytest.approx(100 * cos.mean().item(), abs=1e-4)
    same = frames[:1].expand(4, -1, -1, -1)  # four copies of one frame score as that frame
    assert clip_score(same, "a person kicks", clip_random) == pytest.approx(100 * cos[0].item(), abs=1e-4)


def test_rollout_metrics_in_a_scene(model, standing_height, clip_random):
    scene = get_scene("ball")
    m = scene.mj_model()
    ball = m.qpos0[7 + model.num_dofs:]  # the ball's default placement
    t = _times(6)
    qpos = np.stack([np.concatenate([_pose(model, (0, 0, standing_height)), ball + [0.1 * k, 0, 0, 0, 0, 0, 0]])
                     for k in range(6)])  # the ball rolls 0.1 m per frame (3 m/s) along x
    qvel = np.zeros((6, scene.object_qvel_size))
    qvel[:, 0] = 3.0
    contacts = np.zeros((6, model.num_bodies), dtype=bool)
    contacts[2, model.body_index("right_foot")] = True
    result = RolloutResult(times=t, qpos=qpos, body_pos=np.zeros((6, 15, 3)), body_rot=np.zeros((6, 15, 4)),
                           similarity=np.zeros(6), latents=np.zeros((1, 64)), goal="kick the ball", scene="ball",
                           object_qvel=qvel, object_contacts=contacts,
                           frames=np.full((6, 32, 32, 3), 128, dtype=np.uint8))
    row = rollout_metrics(result, clip_random, prompt="kick the ball")
    expected = scene.interaction_metrics(t, qpos[:, 7 + model.num_dofs:], qvel, contacts, model.body_names)
    assert {k: row[k] for k in expected} == pytest.approx(expected, nan_ok=True)  # NaN: e.g. not yet at rest
    assert row["first_contact_s"] == pytest.approx(t[2]) and row["first_contact_body"] == "right_foot"
    assert row["penetration_max_m"] == pytest.approx(0.0, abs=1e-9) and not row["fell"]  # the ball is no floor
    assert row["clip_s"] == pytest.approx(100 * clip_random.similarity(torch.as_tensor(result.frames[:1]),
                                                                       "kick the ball").item(), abs=1e-4)
    with pytest.raises(ValueError, match="prompt"):
        rollout_metrics(result, clip_random)
