"""MujocoBackend: state round trips, FK agreement, velocity conventions, stepping, contacts, blow-ups."""

import math

import mujoco
import numpy as np
import pytest
import torch

from anyskill.humanoid import rotations as rot
from anyskill.humanoid.skeleton import Skeleton
from anyskill.sim.backend import Backend
from anyskill.sim.mujoco_backend import MujocoBackend

F64 = torch.float64


def random_state(model, n, seed=0, height=1.5):
    g = torch.Generator().manual_seed(seed)
    lo, hi = torch.tensor(model.dof_lower), torch.tensor(model.dof_upper)
    root_pos = torch.randn(n, 3, generator=g, dtype=F64) * 0.3 + torch.tensor([0.0, 0.0, height], dtype=F64)
    root_rot = rot.quat_normalize(torch.randn(n, 4, generator=g, dtype=F64))
    return dict(
        root_pos=root_pos,
        root_rot=root_rot,
        root_vel=torch.randn(n, 3, generator=g, dtype=F64),
        root_ang_vel=torch.randn(n, 3, generator=g, dtype=F64) * 2,
        dof_pos=lo + (hi - lo) * torch.rand(n, model.num_dofs, generator=g, dtype=F64),
        dof_vel=torch.randn(n, model.num_dofs, generator=g, dtype=F64) * 2,
    )


def set_all(be, s):
    be.set_state(torch.arange(be.num_envs), **s)


def same_rotation(a, b):
    """Max elementwise error between quaternions up to sign."""
    return torch.minimum((a - b).abs().amax(-1), (a + b).abs().amax(-1)).max().item()


@pytest.fixture(scope="module")
def be64(model):
    return MujocoBackend(6, model, dtype=F64)


def test_is_a_backend(be64):
    assert isinstance(be64, Backend)
    assert be64.num_envs == 6 and be64.physics_dt == pytest.approx(1 / 120)


def test_set_state_round_trip_with_world_angular_velocity(be64, model):
    s = random_state(model, 6)
    set_all(be64, s)
    q, v = be64.qpos(), be64.qvel()
    assert torch.allclose(q[:, :3], s["root_pos"], atol=1e-12)
    assert same_rotation(q[:, 3:7], s["root_rot"]) < 1e-12
    assert torch.allclose(be64.dof_pos(), s["dof_pos"], atol=1e-12)
    assert torch.allclose(be64.dof_vel(), s["dof_vel"], atol=1e-12)
    # angular velocity goes in and comes out in the world frame although MuJoCo stores it body-frame
    assert torch.allclose(v[:, 3:6], s["root_ang_vel"], atol=1e-12)
    assert torch.allclose(be64.body_ang_vel()[:, 0], s["root_ang_vel"], atol=1e-12)
    assert torch.allclose(be64.body_vel()[:, 0], s["root_vel"], atol=1e-12)
    local = np.asarray(be64.data[0].qvel[3:6])
    assert not np.allclose(local, s["root_ang_vel"][0].numpy(), atol=1e-3)  # the conversion is not a no-op
    rs = be64.root_state()
    assert rs.shape == (6, 13) and torch.allclose(rs[:, 10:13], s["root_ang_vel"], atol=1e-12)


def test_body_states_equal_forward_kinematics(be64, model):
    s = random_state(model, 6, seed=1)
    set_all(be64, s)
    pos, quat = Skeleton(model).forward_kinematics(s["root_pos"], s["root_rot"], s["dof_pos"])
    assert be64.body_pos().shape == (6, model.num_bodies, 3)
    assert (be64.body_pos() - pos).abs().max().item() < 1e-10
    assert same_rotation(be64.body_rot(), quat) < 1e-10


def test_body_velocities_equal_finite_differences(be64, model):
    """Velocities of the body origins (m/s) and body angular velocities (rad/s), world frame."""
    s = random_state(model, 6, seed=2)
    set_all(be64, s)
    pos0, rot0 = be64.body_pos().clone(), be64.body_rot().clone()
    vel, ang = be64.body_vel().clone(), be64.body_ang_vel().clone()
    h = 1e-6
    moved = dict(s)
    moved["root_pos"] = s["root_pos"] + h * s["root_vel"]
    moved["root_rot"] = rot.quat_mul(rot.quat_from_exp_map(h * s["root_ang_vel"]), s["root_rot"])
    moved["dof_pos"] = s["dof_pos"] + h * s["dof_vel"]
    set_all(be64, moved)
    fd_vel = (be64.body_pos() - pos0) / h
    fd_ang = rot.quat_to_exp_map(rot.quat_mul(be64.body_rot(), rot.quat_conjugate(rot0))) / h
    assert vel.abs().max() > 1.0  # a real test: the bodies move
    assert (fd_vel - vel).abs().max().item() < 1e-4
    assert (fd_ang - ang).abs().max().item() < 1e-4


def test_stepping_equals_plain_mj_step(model):
    be = MujocoBackend(2, model, dtype=F64)
    s = random_state(model, 2, seed=3, height=1.0)
    set_all(be, s)
    m = be.mj_model
    ref = mujoco.MjData(m)
    ref.qpos[:] = be.data[1].qpos
    ref.qvel[:] = be.data[1].qvel
    rng = np.random.default_rng(0)
    for _ in range(5):
        targets = torch.from_numpy(rng.uniform(-0.3, 0.3, (2, model.num_dofs)))
        be.set_pd_targets(targets)
        be.step(4)
        ref.ctrl[:] = targets[1].numpy()  # actuators are declared in DoF order in the bundled MJCF
        mujoco.mj_step(m, ref, 4)
    assert np.array_equal(be.data[1].qpos, ref.qpos)
    assert np.array_equal(be.qpos()[1, 7:].numpy(), ref.qpos[7:])


def test_threads_give_identical_results(model):
    s = random_state(model, 4, seed=4, height=1.0)
    targets = torch.rand(4, model.num_dofs, generator=torch.Generator().manual_seed(0), dtype=F64) - 0.5
    out = []
    for threads in (1, 2):
        be = MujocoBackend(4, model, dtype=F64, num_threads=threads)
        set_all(be, s)
        be.set_pd_targets(targets)
        for _ in range(10):
            be.step(4)
        out.append(be.qpos())
        be.close()
    assert torch.equal(out[0], out[1])


def test_free_fall_follows_gravity(model):
    be = MujocoBackend(1, model, dtype=F64)
    z = torch.zeros(1, 3, dtype=F64)
    root_pos = torch.tensor([[0.0, 0.0, 2.0]], dtype=F64)
    ident = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=F64)
    zd = torch.zeros(1, model.num_dofs, dtype=F64)
    be.set_state(torch.tensor([0]), root_pos, ident, z, z, zd, zd)
    be.set_pd_targets(zd)
    be.step(48)  # 0.4 s: falls 0.78 m; the soles start 1.11 m above the floor
    t = 48 * be.physics_dt
    # semi-implicit Euler lags the exact parabola by g t dt / 2 (0.016 m here)
    dt = be.physics_dt
    assert be.root_state()[0, 2].item() == pytest.approx(2.0 - 0.5 * 9.81 * t * t, abs=9.81 * t * dt / 2 + 1e-3)
    assert be.root_state()[0, 9].item() == pytest.approx(-9.81 * t, abs=1e-3)


def test_pd_targets_are_tracked_in_free_fall(model):
    """In free fall gravity exerts no joint torques, so the PD loop alone decides the pose: targets in the
    DoF order must be reached (this catches a wrong actuator order)."""
    be = MujocoBackend(1, model, dtype=F64)
    z = torch.zeros(1, 3, dtype=F64)
    zd = torch.zeros(1, model.num_dofs, dtype=F64)
    up = torch.tensor([[1.0, 0, 0, 0]], dtype=F64)
    be.set_state(torch.tensor([0]), torch.tensor([[0.0, 0.0, 5.0]], dtype=F64), up, z, z, zd, zd)
    lo, hi = torch.tensor(model.dof_lower), torch.tensor(model.dof_upper)
    targets = (lo + (hi - lo) * torch.linspace(0.3, 0.7, model.num_dofs, dtype=F64))[None]
    be.set_pd_targets(targets)
    be.step(60)
    assert (be.dof_pos() - targets).abs().max().item() < 0.02


def test_standing_contact_forces_carry_the_weight(model):
    be = MujocoBackend(1, model, dtype=F64)
    z = torch.zeros(1, 3, dtype=F64)
    zd = torch.zeros(1, model.num_dofs, dtype=F64)
    up = torch.tensor([[1.0, 0, 0, 0]], dtype=F64)
    be.set_state(torch.tensor([0]), torch.tensor([[0.0, 0.0, 0.89]], dtype=F64), up, z, z, zd, zd)
    assert be.body_contact_force().abs().max().item() == 0.0  # zero until a step has solved contacts
    be.set_pd_targets(zd)
    be.step(240)  # 2 s: settled on its feet
    force = be.body_contact_force()[0]
    feet = model.contact_body_ids
    others = [b for b in range(model.num_bodies) if b not in feet]
    assert force[feet, 2].sum().item() == pytest.approx(model.total_mass * 9.81, rel=0.02)
    assert (force[feet, 2] > 0).all()
    assert force[others].abs().max().item() == 0.0


def test_self_collision_switch(model):
    """Random poses in the air: limbs interpenetrate sometimes; without self-collision no contact is made."""
    counts = {}
    for flag in (True, False):
        be = MujocoBackend(32, model, dtype=F64, self_collision=flag)
        set_all(be, random_state(model, 32, seed=5, height=3.0))
        counts[flag] = sum(d.ncon for d in be.data)
    assert counts[True] > 0
    assert counts[False] == 0


def test_diverged_flags_nan_and_set_state_clears_it(model):
    be = MujocoBackend(3, model)
    s = {k: v.float() for k, v in random_state(model, 3, seed=6, height=1.0).items()}
    set_all(be, s)
    assert not be.diverged().any()
    be.data[1].qvel[7] = math.nan
    be.step(2)
    assert be.diverged().tolist() == [False, True, False]
    assert torch.isfinite(be.qpos()[[0, 2]]).all()
    keys = ("root_pos", "root_rot", "root_vel", "root_ang_vel", "dof_pos", "dof_vel")
    be.set_state(torch.tensor([1]), *(s[k][1:2] for k in keys))
    assert not be.diverged().any()
    be.step(2)
    assert not be.diverged().any()


def test_diverged_flags_exploding_speed(model):
    be = MujocoBackend(2, model, max_speed=50.0)
    s = {k: v.float() for k, v in random_state(model, 2, seed=7).items()}
    s["dof_vel"][0, 3] = 80.0
    set_all(be, s)
    assert be.diverged().tolist() == [True, False]


def test_errors_name_the_problem(model):
    be = MujocoBackend(2, model)
    s = random_state(model, 2)
    with pytest.raises(ValueError, match="dof_pos must have shape"):
        be.set_state(torch.arange(2), **{**s, "dof_pos": s["dof_pos"][:, :5]})
    with pytest.raises(ValueError, match="zero quaternions"):
        be.set_state(torch.arange(2), **{**s, "root_rot": torch.zeros(2, 4, dtype=F64)})
    with pytest.raises(IndexError, match="env ids"):
        be.set_state(torch.tensor([0, 2]), **s)
    with pytest.raises(ValueError, match="set_pd_targets"):
        be.set_pd_targets(torch.zeros(3, model.num_dofs))
    with pytest.raises(ValueError, match="integrator"):
        MujocoBackend(1, model, integrator="verlet")
    with pytest.raises(ValueError, match="num_envs"):
        MujocoBackend(0, model)
