"""HumanoidEnv: agent/demo AMP consistency, PD mapping, falls, time-outs, resets, blow-up guard, rl-games."""

import math
import warnings

import numpy as np
import pytest
import torch

from anyskill.motion import MotionClip, load_motion
from anyskill.motion.library import MotionLibrary
from anyskill.rl.vecenv import register_rl_games_env
from anyskill.sim.env import EnvConfig, HumanoidEnv

CLIPS = ("walk", "hop")  # the quick-to-import ones; the tumbling clip below covers arbitrary orientations


def tumbling_clip(model, frames=45, fps=30.0):
    """A synthetic clip spinning about a tilted axis at 4 rad/s with every hinge swinging inside its range."""
    t = np.arange(frames)[:, None] / fps
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    angle = 4.0 * t
    root_rot = np.concatenate([np.cos(angle / 2), np.sin(angle / 2) * axis], axis=1)
    root_pos = np.concatenate([0.5 * t, 0.2 * t, 1.0 + 0.1 * np.sin(3 * t)], axis=1)
    mid, half = (model.dof_upper + model.dof_lower) / 2, (model.dof_upper - model.dof_lower) / 2
    phase = np.arange(model.num_dofs)
    dof_pos = mid + 0.8 * half * np.sin(2.5 * t + phase)
    return MotionClip("tumble", fps, root_pos, root_rot, dof_pos, model=model)


@pytest.fixture(scope="module")
def lib(shared_data, model):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*exact repeats")  # the AMP clips store 30 fps data at 60 fps
        clips = [load_motion(shared_data / "motions" / f"amp_humanoid_{name}.npy") for name in CLIPS]
        return MotionLibrary(clips + [tumbling_clip(model)])


def make_env(num_envs=2, lib=None, **kw):
    kw.setdefault("fall_init_prob", 0.0)
    return HumanoidEnv(EnvConfig(num_envs=num_envs, **kw), lib)


def standing_actions(env):
    """Actions whose PD targets are all zero (the straight default pose)."""
    offset, scale = env._pd_offset, env._pd_scale
    return (-offset / scale).expand(env.num_envs, -1).clone()


def knee_actions(env):
    a = standing_actions(env)
    knees = [i for i, n in enumerate(env.model.dof_names) if "knee" in n]
    a[:, knees] = 1.0
    return a


def test_sizes_and_spaces():
    env = make_env(3)
    assert (env.num_obs, env.num_actions, env.num_amp_obs_per_step) == (223, 28, 125)
    assert env.observation_space.shape == (223,) and env.action_space.shape == (28,)
    assert env.amp_observation_space.shape == (1250,)
    assert env.dt == pytest.approx(1 / 30)
    obs = env.reset()["obs"]
    assert obs.shape == (3, 223) and torch.isfinite(obs).all()
    obs_d, reward, dones, extras = env.step(torch.zeros(3, 28))
    assert obs_d["obs"].shape == (3, 223) and reward.shape == (3,) and dones.shape == (3,)
    assert not reward.any()
    assert extras["amp_obs"].shape == (3, 1250)
    assert extras["terminate"].dtype == torch.bool and extras["time_outs"].dtype == torch.bool


def test_kinematic_replay_amp_obs_equal_motion_library(lib):
    """States set frame by frame in the simulator give the AMP frames the library computes for demos."""
    n = 48
    env = make_env(n, lib)
    g = torch.Generator().manual_seed(0)
    clip_ids = torch.arange(n) % lib.num_clips
    times = lib.sample_times(clip_ids, generator=g)
    times[:6] = 0.0  # clip starts
    times[6:12] = lib.durations[clip_ids[6:12]]  # clip ends
    s = lib.state_at(clip_ids, times)
    env.backend.set_state(torch.arange(n), s.root_pos, s.root_rot, s.root_vel, s.root_ang_vel, s.dof_pos, s.dof_vel)
    sim = env.current_amp_obs()
    demo = lib.amp_obs_at(clip_ids, times)
    assert (sim - demo).abs().max().item() < 1e-4
    assert (env.backend.body_pos() - s.body_pos).abs().max().item() < 1e-5
    # a frame replayed one control step later differs: the comparison is not vacuous
    later = lib.amp_obs_at(clip_ids, times + env.dt)
    assert (sim - later).abs().max().item() > 0.05


def test_reference_state_init_fills_history_from_the_clip(lib):
    env = make_env(8, lib, state_init="random")
    env.reset()
    hist = env.amp_obs_history
    assert hist.shape == (8, 10, 125)
    # slot 0 is the simulated current frame; older slots come from the clip (and differ from slot 0)
    assert (hist[:, 0] - env.current_amp_obs()).abs().max().item() < 1e-4
    assert (hist[:, 1:] - hist[:, :1]).abs().amax(dim=(1, 2)).min().item() > 1e-3


def test_start_state_init_uses_clip_frame_zero(lib):
    env = make_env(8, lib, state_init="start")
    env.reset()
    starts = torch.stack([torch.from_numpy(c.root_pos[0]).float() for c in lib.clips])
    root = env.backend.body_pos()[:, 0]
    assert torch.cdist(root, starts).min(dim=1).values.max().item() < 1e-5


def test_default_reset_history_is_copies_and_shifts_newest_first():
    env = make_env(2)
    env.reset()
    h0 = env.amp_obs_history.clone()
    assert torch.equal(h0, h0[:, :1].expand_as(h0))
    root = env.backend.body_pos()[:, 0]
    assert torch.allclose(root[:, 2], torch.full((2,), 0.89))
    _, _, _, extras = env.step(standing_actions(env))
    amp = extras["amp_obs"].reshape(2, 10, 125)
    assert torch.equal(amp[:, 1:], h0[:, :-1])  # previous frames moved one slot back
    assert torch.allclose(amp[:, 0], env.current_amp_obs())


def test_pd_targets_at_action_bounds_match_reference_ranges():
    env = make_env(1)
    names = env.model.dof_names
    hi = env.action_to_pd_target(torch.full((1, 28), 5.0))[0]  # clamped to +1
    lo = env.action_to_pd_target(torch.full((1, 28), -1.0))[0]
    assert torch.equal(hi, env.action_to_pd_target(torch.ones(1, 28))[0])
    expected = {
        "abdomen": (-1.8850, 1.8850),
        "neck": (-1.2566, 1.2566),
        "shoulder": (-math.pi, math.pi),
        "hip": (-2.9322, 2.9322),
        "ankle": (-1.1519, 1.1519),
        "elbow": (-3.351, 0.559),
        "knee": (-0.559, 3.351),
    }
    for i, name in enumerate(names):
        (lo_ref, hi_ref) = next(v for k, v in expected.items() if k in name)
        assert lo[i].item() == pytest.approx(lo_ref, abs=1e-3), name
        assert hi[i].item() == pytest.approx(hi_ref, abs=1e-3), name


def test_straight_pose_with_zero_targets_stands():
    env = make_env(2, episode_length=1000)
    env.reset()
    a = standing_actions(env)
    for _ in range(30):  # 1 s
        _, _, dones, _ = env.step(a)
        assert not dones.any()
    assert (env.backend.body_pos()[:, 0, 2] > 0.8).all()


def test_collapsing_knees_fall_and_terminate_then_reset():
    env = make_env(2, episode_length=1000, recovery_episode_prob=0.0)
    env.reset()
    a = standing_actions(env)
    a[0] = knee_actions(env)[0]
    for step in range(90):  # 3 s  # noqa: B007 (step is read after the loop)
        _, _, dones, extras = env.step(a)
        if dones.any():
            break
    assert dones.tolist() == [True, False], f"no fall within 3 s (step {step})"
    assert extras["terminate"].tolist() == [True, False]
    assert not extras["time_outs"].any()
    # env 0 restarted from the default pose; env 1 went on
    assert env.progress.tolist() == [0, step + 1]
    assert env.backend.body_pos()[0, 0, 2].item() == pytest.approx(0.89, abs=1e-5)
    # the AMP observation returned with the termination is the fallen state's, not the reset one
    assert extras["amp_obs"][0, 0].item() < 0.5  # root height of the last frame


def test_early_termination_can_be_disabled():
    env = make_env(1, episode_length=1000, enable_early_termination=False)
    env.reset()
    a = knee_actions(env)
    for _ in range(60):
        _, _, dones, _ = env.step(a)
        assert not dones.any()
    assert env.backend.body_pos()[0, 0, 2].item() < 0.5


def test_time_out_at_episode_length_kept_apart_from_termination():
    env = make_env(2, episode_length=12)
    env.reset()
    a = standing_actions(env)
    for step in range(11):
        _, _, dones, extras = env.step(a)
        assert dones.any() == (step == 10), step
    assert extras["time_outs"].all() and not extras["terminate"].any()
    assert env.progress.tolist() == [0, 0]


def test_no_blowups_over_1000_moderate_random_steps():
    env = make_env(4, episode_length=200)
    env.reset()
    g = torch.Generator().manual_seed(0)
    for _ in range(1000):
        obs, _, _, extras = env.step(torch.rand(4, 28, generator=g) - 0.5)
        assert torch.isfinite(obs["obs"]).all() and torch.isfinite(extras["amp_obs"]).all()
    assert env.sim_blowups_total == 0


def test_violent_random_actions_keep_observations_finite():
    """Full-range i.i.d. actions may blow up worlds (see MujocoBackend); the guard keeps training data finite."""
    env = make_env(4, episode_length=100)
    env.reset()
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        obs, _, _, extras = env.step(torch.rand(4, 28, generator=g) * 2 - 1)
        assert torch.isfinite(obs["obs"]).all() and torch.isfinite(extras["amp_obs"]).all()
    assert extras["sim_blowups_total"] == env.sim_blowups_total


def test_blowup_guard_resets_corrupted_env_and_counts():
    env = make_env(3, episode_length=1000)
    env.reset()
    a = standing_actions(env)
    env.step(a)
    env.backend.data[1].qvel[4] = math.nan
    obs, _, dones, extras = env.step(a)
    assert dones.tolist() == [False, True, False]
    assert extras["sim_blowups"] == 1 and extras["sim_blowups_total"] == 1
    assert extras["time_outs"][1] and not extras["terminate"][1]
    assert torch.isfinite(obs["obs"]).all() and torch.isfinite(extras["amp_obs"]).all()
    assert env.progress[1] == 0 and not env.backend.diverged().any()
    env.backend.data[2].qpos[0] = math.inf
    _, _, _, extras = env.step(a)
    assert extras["sim_blowups"] == 1 and extras["sim_blowups_total"] == 2 == env.sim_blowups_total


def test_fall_state_bank_lies_on_the_ground():
    env = make_env(4, fall_init_prob=1.0, num_fall_states=6)
    bank = env.fall_states
    assert bank["root_pos"].shape == (6, 3) and bank["dof_pos"].shape == (6, 28)
    for v in bank.values():
        assert torch.isfinite(v).all()
    assert torch.allclose(bank["root_rot"].norm(dim=-1), torch.ones(6), atol=1e-5)
    assert (bank["root_pos"][:, 2] < 0.5).all()
    assert (bank["dof_pos"] >= torch.tensor(env.model.dof_lower).float() - 0.1).all()
    # the bank poses differ (random orientations and targets)
    assert torch.pdist(bank["dof_pos"]).min() > 0.1
    # with fall_init_prob = 1 every reset starts from a bank pose, at rest
    env.reset()
    root = env.backend.body_pos()[:, 0]
    assert torch.cdist(root, bank["root_pos"]).min(dim=1).values.max().item() < 1e-5
    assert env.backend.qvel().abs().max().item() == 0.0


def test_recovery_episode_suppresses_termination_then_ends():
    env = make_env(1, episode_length=1000, recovery_episode_prob=1.0, recovery_steps=20)
    env.reset()
    a = knee_actions(env)
    for _ in range(90):
        _, _, dones, extras = env.step(a)
        if dones.any():
            break
    assert extras["terminate"].item()
    # not reset: the env keeps its fallen state and gets recovery_steps of immunity
    assert env.backend.body_pos()[0, 0, 2].item() < 0.6
    assert env.recovery_counter.item() == 20 and env.progress.item() == 0
    for _ in range(19):
        _, _, dones, _ = env.step(a)
        assert not dones.any()
    _, _, dones, extras = env.step(a)  # immunity over, still lying: falls again
    assert dones.item() and extras["terminate"].item()


def test_config_errors_are_explicit(lib):
    with pytest.raises(ValueError, match="state_init"):
        EnvConfig(state_init="reference")
    with pytest.raises(ValueError, match="needs a motion_lib"):
        HumanoidEnv(EnvConfig(num_envs=1, state_init="random", fall_init_prob=0.0))
    with pytest.raises(ValueError, match="probability"):
        EnvConfig(fall_init_prob=1.5)
    env = make_env(2)
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(torch.zeros(2, 27))


def test_hybrid_init_mixes_default_and_reference_states(lib):
    env = make_env(32, lib, state_init="hybrid", hybrid_init_prob=0.5)
    env.reset()
    root = env.backend.body_pos()[:, 0]
    default = (root[:, :2].abs().sum(-1) < 1e-6) & ((root[:, 2] - 0.89).abs() < 1e-6)
    assert 4 <= int(default.sum()) <= 28


def test_rl_games_vecenv_registration():
    from rl_games.common import env_configurations, vecenv

    register_rl_games_env("anyskill_test_env", lambda **kw: make_env(3, **kw))
    assert env_configurations.configurations["anyskill_test_env"]["vecenv_type"] == "ANYSKILL"
    venv = vecenv.create_vec_env("anyskill_test_env", 3)
    info = venv.get_env_info()
    assert info["observation_space"].shape == (223,) and info["action_space"].shape == (28,)
    assert venv.get_number_of_agents() == 1
    obs = venv.reset()
    assert obs["obs"].shape == (3, 223)
    obs, reward, dones, extras = venv.step(torch.zeros(3, 28))
    assert obs["obs"].shape == (3, 223) and "amp_obs" in extras
    with pytest.raises(ValueError, match="num_actors"):
        vecenv.create_vec_env("anyskill_test_env", 5)
    assert np.isfinite(reward.numpy()).all()


def test_terminal_obs_is_the_reached_state_before_the_reset():
    env = make_env(2, episode_length=1000, recovery_episode_prob=0.0)
    env.reset()
    a = knee_actions(env)
    a[1] = standing_actions(env)[1]
    for _ in range(90):
        obs, _, dones, extras = env.step(a)
        if dones.any():
            break
    assert dones.tolist() == [True, False]
    assert extras["terminal_obs"][0, 0].item() < 0.5  # root height of the fallen state
    assert obs["obs"][0, 0].item() == pytest.approx(0.89, abs=1e-4)  # the new episode's first state
    assert torch.equal(extras["terminal_obs"][1], obs["obs"][1])  # no reset: the same observation
    assert torch.allclose(env.policy_observation(), obs["obs"])


def test_fallen_starts_get_recovery_immunity():
    env = make_env(3, fall_init_prob=1.0, num_fall_states=3, recovery_steps=25)
    env.reset()
    assert env.recovery_counter.tolist() == [25, 25, 25]
    for _ in range(24):
        _, _, dones, extras = env.step(standing_actions(env))
        assert not extras["terminate"].any()  # lying on the ground, but not yet failing
    assert extras["fallen"].any()


def test_reset_records_say_where_episodes_started(lib):
    env = make_env(6, lib, state_init="random", episode_length=3)
    env.reset()
    assert (env.reset_clip >= 0).all() and not env.reset_default.any()
    _, _, dones, extras = env.step(standing_actions(env))
    assert not dones.any() and (extras["reset_clip"] == -1).all() and (extras["reset_time"] == 0).all()
    _, _, dones, extras = env.step(standing_actions(env))
    assert dones.all() and (extras["reset_clip"] >= 0).all()
    assert (extras["reset_time"] <= lib.durations[extras["reset_clip"]] + 1e-6).all()
    default = make_env(2, state_init="default")
    default.reset()
    assert default.reset_default.all() and (default.reset_clip == -1).all()


def test_no_time_limit_and_fall_reporting_without_termination():
    env = make_env(1, episode_length=None, enable_early_termination=False)
    env.reset()
    seen_fall = False
    for _ in range(400):
        _, _, dones, extras = env.step(knee_actions(env))
        assert not dones.any()
        seen_fall |= bool(extras["fallen"].any())
    assert seen_fall and not extras["terminate"].any()
    with pytest.raises(ValueError, match="episode_length"):
        EnvConfig(episode_length=1)


def test_snapshot_restore_continues_bit_for_bit(lib):
    cfg = dict(state_init="hybrid", fall_init_prob=0.3, num_fall_states=8)
    env = make_env(6, lib, seed=3, **cfg)
    env.reset()
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(6, 28, generator=g) - 0.5 for _ in range(70)]
    for a in actions[:30]:
        env.step(a)
    snap = env.snapshot()
    first = [env.step(a) for a in actions[30:]]
    other = make_env(6, lib, seed=99, **cfg)  # another seed: everything that matters comes from the snapshot
    other.reset()
    other.restore(snap)
    dones_seen = 0
    for a, (obs, _, dones, extras) in zip(actions[30:], first, strict=True):
        obs2, _, dones2, extras2 = other.step(a)
        assert torch.equal(obs["obs"], obs2["obs"]) and torch.equal(dones, dones2)
        assert torch.equal(extras["amp_obs"], extras2["amp_obs"])
        assert torch.equal(extras["reset_clip"], extras2["reset_clip"])
        dones_seen += int(dones.sum())
    assert dones_seen > 0  # resets happened after the snapshot, so their randomness was restored too
    with pytest.raises(ValueError, match="same size"):
        make_env(2, lib, **cfg).restore(snap)


def test_start_from_reference_sets_clip_state_and_history(lib):
    env = make_env(3, lib, episode_length=None)
    env.reset()
    ids = torch.tensor([0, 1, 2])
    t0 = torch.tensor([0.0, 0.3, 0.5])
    env.start_from_reference(torch.arange(3), ids, t0)
    assert torch.allclose(env.amp_obs_history, lib.amp_obs_window(ids, t0, 10, env.dt), atol=1e-5)
    assert (env.backend.body_pos() - lib.state_at(ids, t0).body_pos).abs().max().item() < 1e-5
    assert env.progress.tolist() == [0, 0, 0] and env.reset_clip.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match="one clip and time per env"):
        env.start_from_reference(torch.arange(3), ids[:2], t0)
