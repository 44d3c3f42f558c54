"""The humanoid MJCF against the published facts (reference facts §1.1, §1.3, §10)."""

import math

import mujoco
import numpy as np
import pytest
import torch

from anyskill.humanoid.skeleton import Skeleton

BODIES = ["pelvis", "torso", "head", "right_upper_arm", "right_lower_arm", "right_hand", "left_upper_arm",
          "left_lower_arm", "left_hand", "right_thigh", "right_shin", "right_foot", "left_thigh", "left_shin",
          "left_foot"]
PARENTS = [-1, 0, 1, 1, 3, 4, 1, 6, 7, 0, 9, 10, 0, 12, 13]
OFFSETS = {  # skeleton local translations of the motion files (§10), m
    "torso": (0, 0, 0.236151), "head": (0, 0, 0.223894), "right_upper_arm": (-0.02405, -0.18311, 0.2435),
    "right_lower_arm": (0, 0, -0.274788), "right_hand": (0, 0, -0.258947),
    "left_upper_arm": (-0.02405, 0.18311, 0.2435),
    "left_lower_arm": (0, 0, -0.274788), "left_hand": (0, 0, -0.258947), "right_thigh": (0, -0.084887, 0),
    "right_shin": (0, 0, -0.421546), "right_foot": (0, 0, -0.40987), "left_thigh": (0, 0.084887, 0),
    "left_shin": (0, 0, -0.421546), "left_foot": (0, 0, -0.40987),
}
DOF_RANGES_DEG = {
    "abdomen": [(-60, 60), (-60, 90), (-50, 50)], "neck": [(-50, 50), (-40, 60), (-45, 45)],
    "right_shoulder": [(-180, 45), (-180, 60), (-90, 90)], "left_shoulder": [(-45, 180), (-180, 60), (-90, 90)],
    "right_elbow": [(-160, 0)], "left_elbow": [(-160, 0)],
    "right_hip": [(-60, 15), (-140, 60), (-60, 35)], "left_hip": [(-15, 60), (-140, 60), (-35, 60)],
    "right_knee": [(0, 160)], "left_knee": [(0, 160)],
    "right_ankle": [(-30, 30), (-55, 55), (-40, 40)], "left_ankle": [(-30, 30), (-55, 55), (-40, 40)],
}
JOINT_ORDER = ["abdomen", "neck", "right_shoulder", "right_elbow", "left_shoulder", "left_elbow",
               "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle"]


def test_body_and_dof_order(model):
    assert list(model.body_names) == BODIES
    assert model.parents.tolist() == PARENTS
    assert model.num_dofs == 28
    assert [j.name for j in model.joints] == JOINT_ORDER
    offsets = [0, 3, 6, 9, 10, 13, 14, 17, 18, 21, 24, 25, 28]
    assert [j.dofs[0] for j in model.joints] + [28] == offsets


def test_joint_limits_and_gains(model):
    for joint in model.joints:
        for dof, (lo, hi) in zip(joint.dofs, DOF_RANGES_DEG[joint.name], strict=True):
            assert math.degrees(model.dof_lower[dof]) == pytest.approx(lo)
            assert math.degrees(model.dof_upper[dof]) == pytest.approx(hi)
    gains = {"abdomen": (1000, 100), "neck": (100, 10), "right_shoulder": (400, 40), "right_elbow": (300, 30),
             "right_hip": (500, 50), "right_knee": (500, 50), "right_ankle": (400, 40)}
    for joint in model.joints:
        name = joint.name.replace("left", "right")
        kp, kd = gains[name]
        assert np.all(model.kp[list(joint.dofs)] == kp) and np.all(model.kd[list(joint.dofs)] == kd)


def test_total_mass_within_one_percent(model):
    assert model.total_mass == pytest.approx(48.9, rel=0.01)


def test_zero_pose_fk_equals_skeleton_offsets(model):
    sk = Skeleton(model)
    pos, rot = sk.forward_kinematics(torch.zeros(3, dtype=torch.float64),
                                     torch.tensor([1.0, 0, 0, 0], dtype=torch.float64),
                                     torch.zeros(28, dtype=torch.float64))
    for i, name in enumerate(BODIES[1:], start=1):
        parent = PARENTS[i]
        np.testing.assert_allclose((pos[i] - pos[parent]).numpy(), OFFSETS[name], atol=1e-9)
    np.testing.assert_allclose(rot[:, 0].numpy(), 1.0)


def test_fk_matches_mujoco_for_random_states(model):
    m = model.mj_model()
    d = mujoco.MjData(m)
    sk = Skeleton(model)
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.uniform(model.dof_lower, model.dof_upper)
        root = rng.normal(size=4)
        root /= np.linalg.norm(root)
        d.qpos[:3] = rng.normal(size=3)
        d.qpos[3:7] = root
        d.qpos[7:] = q
        mujoco.mj_kinematics(m, d)
        pos, rot = sk.forward_kinematics(torch.tensor(d.qpos[:3]), torch.tensor(root), torch.tensor(q))
        np.testing.assert_allclose(pos.numpy(), d.xpos[1:], atol=1e-12)
        np.testing.assert_allclose(np.abs((rot.numpy() * d.xquat[1:]).sum(-1)), 1.0, atol=1e-12)


def test_pd_action_mapping_matches_reference(model):
    offset, scale = model.pd_offset_scale
    expected_scale = {"abdomen": 1.8850, "neck": 1.2566, "right_shoulder": math.pi, "left_shoulder": math.pi,
                      "right_hip": 2.9322, "left_hip": 2.9322, "right_ankle": 1.1519, "left_ankle": 1.1519,
                      "right_elbow": 1.9548, "left_elbow": 1.9548, "right_knee": 1.9548, "left_knee": 1.9548}
    for joint in model.joints:
        np.testing.assert_allclose(scale[list(joint.dofs)], expected_scale[joint.name], atol=1e-4)
    lo, hi = offset - scale, offset + scale  # PD targets of actions -1 and +1 (HumanoidEnv.action_to_pd_target)
    elbow, knee = model.dof_names.index("right_elbow"), model.dof_names.index("left_knee")
    assert (lo[elbow], hi[elbow]) == pytest.approx((-3.351, 0.559), abs=1e-3)
    assert (lo[knee], hi[knee]) == pytest.approx((-0.559, 3.351), abs=1e-3)
    np.testing.assert_allclose(offset + scale * model.rest_action, 0.0, atol=1e-12)  # the rest action: all targets 0


def test_physics_settings(model):
    m = model.mj_model()
    assert m.opt.timestep == pytest.approx(1 / 120)
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    assert m.nu == 28
    np.testing.assert_allclose(m.dof_damping[6:], 0.0)  # PD lives in the actuators (implicit), not in the joints
