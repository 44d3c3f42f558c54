"""Interaction scenes (paper §4.4): composition, the objects' parameters, the backends' object API, resets,
snapshots, rendering, the scripted physics checks (kick, door push, standing still) and the high-level policy in a
scene (records, rollout metrics, CLI)."""

import json
import math

import mujoco
import numpy as np
import pytest
import torch
from hlc_fixtures import HeightGoal

from anyskill.hlc.env import HighLevelEnv, HLCEnvConfig
from anyskill.sim.env import EnvConfig, HumanoidEnv
from anyskill.sim.interaction import door_push_check, door_settle_angle, kick_check, stand_still_check
from anyskill.sim.mujoco_backend import MujocoBackend
from anyskill.sim.scene import SCENES, Door, SoccerBall, get_scene, settled_time

HUMANOID_NQ = 35


def _body(m, name):
    return mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, name)


# ---------------------------------------------------------------------------------------------- composition
@pytest.mark.parametrize("name", sorted(SCENES))
def test_scene_is_the_unchanged_humanoid_followed_by_its_objects(model, name):
    scene = get_scene(name)
    m, plain = scene.mj_model(), model.mj_model()
    assert m.nq == plain.nq + scene.object_qpos_size and m.nv == plain.nv + scene.object_qvel_size
    np.testing.assert_array_equal(m.qpos0[:HUMANOID_NQ], plain.qpos0)
    for b in model.body_names:  # same bodies, masses, joints and actuators
        assert m.body_mass[_body(m, b)] == plain.body_mass[_body(plain, b)]
    assert m.nu == plain.nu and m.opt.timestep == plain.opt.timestep
    states = [MujocoBackend(1, model, mj_model=mm) for mm in (m, plain)]
    for reader in ("body_pos", "body_rot", "qpos"):
        torch.testing.assert_close(getattr(states[0], reader)(), getattr(states[1], reader)(), atol=0, rtol=0)


def test_ball_is_a_free_shell_of_the_reference_size_and_mass():
    ball = SoccerBall()
    m = get_scene("ball").mj_model()
    b = _body(m, ball.name)
    geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, ball.name)
    assert m.geom_size[geom, 0] == pytest.approx(0.13) and m.body_mass[b] == pytest.approx(0.45)
    np.testing.assert_allclose(m.body_inertia[b], 2 / 3 * 0.45 * 0.13**2)  # hollow sphere
    assert m.jnt_type[m.body_jntadr[b]] == mujoco.mjtJoint.mjJNT_FREE
    assert m.geom_condim[geom] == 6 and m.geom_friction[geom, 2] > 0  # rolling friction
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(d.xpos[b], [*ball.position, 0.13 - ball.resting_depth])  # on the floor, in front
    assert d.xpos[b][0] > 0


def test_door_is_placed_and_hinged_as_in_the_reference():
    door = Door()
    m = get_scene("door").mj_model()
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    frame, leaf = _body(m, "door_frame"), _body(m, door.leaf)
    assert m.body_weldid[frame] == 0 and m.body_weldid[leaf] == leaf  # frame fixed to the world, leaf moves
    np.testing.assert_allclose(d.xpos[frame], [-0.5, 0.7, 0.0])
    yaw = 0.3 * math.pi
    np.testing.assert_allclose(d.xquat[frame], [math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)], atol=1e-12)
    j = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, door.joint)
    assert m.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE and not m.jnt_limited[j]
    np.testing.assert_allclose(d.xaxis[j], [0, 0, 1], atol=1e-12)
    hinge = np.array([-0.5, 0.7, 0.0]) + np.array([0.05 * math.cos(yaw), 0.05 * math.sin(yaw), 0.1])
    np.testing.assert_allclose(d.xanchor[j], hinge, atol=1e-12)
    assert m.dof_damping[m.jnt_dofadr[j]] == 1.0 and m.body_mass[leaf] == pytest.approx(1.0)


def test_unknown_scene_and_bad_jitter_are_rejected():
    with pytest.raises(ValueError, match="ball"):
        get_scene("kitchen")
    with pytest.raises(ValueError, match="jitter"):
        get_scene("ball", jitter=1.5)


# ---------------------------------------------------------------------------------------------- backends, env
def test_backend_places_objects_and_set_state_leaves_them(model):
    scene = get_scene("ball")
    b = MujocoBackend(3, model, mj_model=scene.mj_model())
    default = torch.tensor([*SoccerBall().position, 0.13 - SoccerBall().resting_depth, 1, 0, 0, 0])
    assert b.object_qpos().shape == (3, 7) and b.object_qvel().shape == (3, 6)
    torch.testing.assert_close(b.object_qpos(), default.expand(3, 7))
    q = default.repeat(2, 1)
    q[:, 0] += torch.tensor([1.0, 2.0])
    v = torch.zeros(2, 6)
    v[:, 1] = 0.5
    b.set_object_state(torch.tensor([2, 0]), q, v)
    torch.testing.assert_close(b.object_qpos()[[2, 0]], q)
    torch.testing.assert_close(b.object_qvel()[[2, 0]], v)
    torch.testing.assert_close(b.object_qpos()[1], default)
    before = b.object_qpos().clone()
    d = model.num_dofs
    b.set_state(torch.arange(3), torch.tensor([[0.0, 0.0, 0.89]] * 3), torch.tensor([[1.0, 0, 0, 0]] * 3),
                torch.zeros(3, 3), torch.zeros(3, 3), torch.zeros(3, d), torch.zeros(3, d))
    torch.testing.assert_close(b.object_qpos(), before, atol=0, rtol=0)
    with pytest.raises(ValueError, match="set_object_state"):
        b.set_object_state(torch.tensor([0]), torch.zeros(1, 6), torch.zeros(1, 6))
    plain = MujocoBackend(2, model)
    assert plain.object_qpos().shape == (2, 0) and not plain.object_contacts().any()
    assert plain.object_contacts().shape == (2, model.num_bodies)


def test_env_places_objects_at_resets_and_keeps_them_out_of_the_observation():
    cfg = EnvConfig(num_envs=4, fall_init_prob=0.0)
    plain = HumanoidEnv(cfg)
    env = HumanoidEnv(cfg, scene=get_scene("ball", jitter=1.0))
    obs = env.reset()["obs"]
    torch.testing.assert_close(obs, plain.reset()["obs"], atol=0, rtol=0)  # the ball is not observed
    xy = env.backend.object_qpos()[:, :2]
    offset = (xy - torch.tensor(SoccerBall().position)).abs()
    assert (offset <= SoccerBall().max_offset + 1e-6).all() and offset.max() > 0.01  # randomised, in range
    assert len(set(xy[:, 0].tolist())) == 4
    fixed = HumanoidEnv(cfg, scene=get_scene("door"))
    fixed.reset()
    assert torch.equal(fixed.backend.object_qpos(), torch.zeros(4, 1))  # jitter 0: the default placement
    with pytest.raises(ValueError, match="scene"):
        HumanoidEnv(cfg, backend=MujocoBackend(4), scene=get_scene("ball"))
    with pytest.raises(ValueError, match="scene"):
        HumanoidEnv(cfg, backend=MujocoBackend(4, mj_model=get_scene("ball").mj_model()))


def test_snapshot_restore_is_exact_with_objects():
    cfg = EnvConfig(num_envs=3, fall_init_prob=0.0, episode_length=12)
    env = HumanoidEnv(cfg, scene=get_scene("ball", jitter=1.0))
    env.reset()
    gen = torch.Generator().manual_seed(0)
    actions = [torch.rand(3, 28, generator=gen) * 2 - 1 for _ in range(20)]
    for a in actions[:5]:
        env.step(a)
    snap = env.snapshot()

    def run():
        out = []
        for a in actions[5:]:
            obs = env.step(a)[0]["obs"]
            out.append(torch.cat([obs, env.backend.object_qpos(), env.backend.object_contacts()], -1))
        return torch.stack(out)

    first = run()
    env.restore(snap)
    torch.testing.assert_close(run(), first, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------- scripted checks
def test_kinematic_kick_moves_the_ball_until_it_rests(motion_lib):
    tr = kick_check(motion_lib)
    m = tr.metrics()
    assert m["first_contact_body"] == "right_foot" and 0.7 < m["first_contact_s"] < 0.95
    assert m["ball_displacement_m"] > 0.5 and m["ball_peak_speed_m_s"] > 1.0
    assert m["ball_final_speed_m_s"] < 0.01  # rolling friction and damping stopped it ...
    assert m["first_contact_s"] < m["ball_settled_s"] < m["first_contact_s"] + 3.0  # ... within 3 s of the kick
    assert tr.object_qpos[-1, 2] == pytest.approx(0.13, abs=0.005)  # back on the floor
    assert (tr.object_qpos[-1, 0] - tr.object_qpos[0, 0]) > 0.4  # kicked forward (+x)


def test_pushed_door_opens_and_its_damping_brings_it_to_rest():
    omega = 2.0
    tr = door_push_check(angular_velocity=omega, seconds=2.0)
    m = tr.metrics()
    rest = door_settle_angle(tr.scene, omega)  # ω0 I / c = 0.499 rad for the reference door
    assert m["door_final_angle_deg"] == pytest.approx(math.degrees(rest), rel=5e-3)
    assert m["door_max_angle_deg"] == pytest.approx(m["door_final_angle_deg"], rel=1e-3)  # no overshoot
    assert m["door_final_speed_deg_s"] < 0.5
    assert 0.5 < m["door_settled_s"] < 1.5  # a few time constants I / c = 0.25 s
    tau = rest / omega  # I / c, the time constant
    at_tau = np.interp(tau, tr.times, tr.object_qpos[:, 0])
    assert at_tau == pytest.approx(rest * (1 - math.exp(-1)), rel=0.03)
    assert not tr.contacts.any() and math.isnan(m["first_contact_s"])


@pytest.mark.parametrize("name", sorted(SCENES))
def test_standing_humanoid_leaves_the_objects_at_rest(name):
    tr = stand_still_check(get_scene(name), seconds=3.0)
    m = tr.metrics()
    assert not tr.contacts.any() and tr.qpos[-1, 2] > 0.8  # still standing, never touching
    assert np.abs(tr.object_qpos - tr.object_qpos[0]).max() < 1e-5  # placed at rest: the ball does not even settle
    assert m.get("ball_displacement_m", 0.0) < 1e-3 and m.get("door_max_angle_deg", 0.0) < 1e-2
    assert m.get("ball_settled_s", 0.0) == 0.0 and m.get("door_settled_s", 0.0) == 0.0  # never moved


def test_settled_time_is_when_the_speed_stays_below_the_threshold():
    t = np.arange(6) * 0.5
    assert settled_time(t, np.array([3.0, 0.0, 2.0, 0.5, 0.1, 0.0]), 1.0) == 1.5  # the dip at 0.5 s does not count
    assert settled_time(t, np.zeros(6), 1.0) == 0.0
    assert math.isnan(settled_time(t, np.array([0.0, 0, 0, 0, 0, 2.0]), 1.0))  # still moving at the end


def test_interaction_metrics_report_the_first_contact_and_its_bodies(model):
    scene = get_scene("door")
    t = np.arange(6) / 30
    angle = np.array([[0.0], [0.0], [0.1], [0.3], [0.2], [0.2]])
    contacts = np.zeros((6, model.num_bodies), dtype=bool)
    contacts[2, [model.body_index("left_hand"), model.body_index("left_lower_arm")]] = True
    contacts[3, model.body_index("left_hand")] = True
    m = scene.interaction_metrics(t, angle, np.zeros((6, 1)), contacts, model.body_names)
    assert m["first_contact_s"] == pytest.approx(2 / 30)
    assert m["first_contact_body"] == "left_lower_arm+left_hand"
    assert m["contact_s"] == pytest.approx(2 / 30)
    assert m["door_max_angle_deg"] == pytest.approx(math.degrees(0.3))
    assert m["door_final_angle_deg"] == pytest.approx(math.degrees(0.2))
    with pytest.raises(ValueError, match="T frames"):
        scene.interaction_metrics(t, angle[:3], np.zeros((6, 1)), contacts, model.body_names)


# ---------------------------------------------------------------------------------------------- rendering
def test_scene_camera_sees_the_object(model):
    from anyskill.sim.render import StateRenderer

    scene = get_scene("ball")
    m = scene.mj_model()
    r = StateRenderer(m, scene.camera)
    q = m.qpos0.copy()
    q[2] = 0.89
    moved = q.copy()
    moved[HUMANOID_NQ + 1] += 30.0  # the ball far out of view
    frames = r.render_qpos(np.stack([q, moved])).numpy().astype(int)
    changed = (np.abs(frames[0] - frames[1]).sum(-1) > 60).mean()
    assert changed > 0.003  # the ball covers a visible part of the frame
    humanoid_only = r.render_qpos(q[None, :HUMANOID_NQ]).numpy()  # objects drawn at their default placement
    # the same image, up to a few pixels where the ball dips 0.06 mm into the floor (its resting depth): a fresh
    # renderer's first frame draws 3 of them differently from later frames (measured; none at depth 0)
    assert (humanoid_only[0] != frames[0]).any(-1).sum() <= 10
    with pytest.raises(ValueError, match="nq"):
        StateRenderer(model.mj_model()).render_qpos(q[None])
    r.close()


# ---------------------------------------------------------------------------------------------- high-level policy
def test_high_level_env_in_a_scene_records_the_objects(llc_path, motion_lib):
    from anyskill.llc import load_llc

    cfg = HLCEnvConfig(num_envs=2, scene="door", record_states=True, num_reference_latents=8, stagger_episodes=False)
    env = HighLevelEnv(cfg, load_llc(llc_path), HeightGoal(), motion_lib)
    obs = env.reset()["obs"]
    assert obs.shape == (2, 223)
    obs, _, _, info = env.step(torch.zeros(2, 64) + 0.1)
    assert obs["obs"].shape == (2, 223)
    assert info["llc_qpos"].shape == (2, 5, HUMANOID_NQ + 1) and info["llc_body_pos"].shape == (2, 5, 15, 3)
    assert info["llc_object_qvel"].shape == (2, 5, 1) and info["llc_object_contacts"].shape == (2, 5, 15)


@pytest.mark.slow
def test_policy_trained_in_a_scene_rolls_out_there_with_interaction_metrics(llc_path, motion_lib, tmp_path,
                                                                           capsys):
    from anyskill.cli import main
    from anyskill.hlc.goal_spec import find_clip
    from anyskill.hlc.pose_goal import PoseGoal
    from anyskill.hlc.rollout import evaluate, rollout
    from anyskill.hlc.train import train_hlc

    goal = PoseGoal.from_clip(find_clip("authored_kick", motion_lib))
    run = train_hlc(goal, llc_path, "smoke", tmp_path / "hlc", num_envs=2, max_epochs=1, motion_lib=motion_lib,
                    env_config=HLCEnvConfig(scene="ball"), progress=False)
    ro = rollout(run.checkpoint, llc_path, goal, seconds=0.5, render=False, out_dir=tmp_path / "ro",
                 motion_lib=motion_lib)
    assert ro.scene == "ball" and ro.qpos.shape[1] == HUMANOID_NQ + 7
    assert ro.object_qvel.shape == (len(ro.times), 6) and ro.object_contacts.shape == (len(ro.times), 15)
    assert ro.interaction is not None
    keys = {"ball_displacement_m", "ball_peak_speed_m_s", "ball_settled_s", "first_contact_s", "first_contact_body"}
    assert keys <= set(ro.interaction)
    saved = json.loads((tmp_path / "ro" / "interaction.json").read_text())
    assert saved["scene"] == "ball" and "provenance" in saved
    assert set(np.load(tmp_path / "ro" / "states.npz")) >= {"object_qvel", "object_contacts", "scene"}
    ev = evaluate(run.checkpoint, llc_path, goal, seconds=0.5, num_envs=2, motion_lib=motion_lib)
    assert len(ev.interaction) == 2 and "ball_displacement_m" in ev.interaction
    assert main(["rollout", str(run.checkpoint), "--llc", str(llc_path), "--seconds", "0.4", "--no-render",
                 "--out", str(tmp_path / "cli")]) == 0
    assert "scene ball: ball_displacement_m" in capsys.readouterr().out
