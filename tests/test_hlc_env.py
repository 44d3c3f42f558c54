"""HighLevelEnv mechanics: latents, 5 LLC steps per HLC step, Eq. 3 reward, early termination, time-outs."""

import pytest
import torch
from hlc_fixtures import DecreasingGoal, HeightGoal, build_arm_llc

from anyskill.hlc.env import HighLevelEnv, HLCEnvConfig
from anyskill.llc import load_llc
from anyskill.reward.early_termination import EarlyTerminationConfig
from anyskill.reward.similarity import RewardConfig, hlc_reward

N = 4
NO_ET = EarlyTerminationConfig(mode="off", head_rule=False)


@pytest.fixture(scope="module")
def llc(tmp_path_factory):
    return load_llc(build_arm_llc(tmp_path_factory.mktemp("llc") / "arm_llc.pth"))


def _env(llc, motion_lib, goal=None, **cfg):
    cfg.setdefault("num_envs", N)
    cfg.setdefault("num_reference_latents", 16)
    cfg.setdefault("stagger_episodes", False)
    return HighLevelEnv(HLCEnvConfig(**cfg), llc, goal or HeightGoal(), motion_lib)


def _actions(seed=0):
    return torch.rand(N, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_latent_is_normalised_and_held_for_five_llc_steps(llc, motion_lib, monkeypatch):
    env = _env(llc, motion_lib, early_termination=NO_ET)
    env.reset()
    seen = []
    real_act = env.llc.act
    monkeypatch.setattr(env.llc, "act", lambda obs, z: seen.append(z.clone()) or real_act(obs, z))
    actions = _actions() * 3  # out of range: clamped to [-1, 1] first
    obs, reward, dones, info = env.step(actions)
    assert len(seen) == 5 and env.progress.tolist() == [5] * N
    z = torch.nn.functional.normalize(actions.clamp(-1, 1), dim=-1)
    for zi in seen:
        assert torch.allclose(zi, z) and torch.allclose(zi.norm(dim=-1), torch.ones(N))
    assert torch.equal(info["z"], z)
    assert obs["obs"].shape == (N, 223) and reward.shape == (N,) and not dones.any()
    assert info["similarities"].shape == (N, 5) and info["scored"].all()
    # the HLC runs at 6 Hz: 5 control steps of 1/30 s
    assert env.dt == pytest.approx(5 / 30)


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_reward_is_eq3_of_the_per_step_similarities(llc, motion_lib, variant):
    rcfg = RewardConfig(variant=variant)
    env = _env(llc, motion_lib, reward=rcfg, early_termination=NO_ET)
    env.reset()
    for seed in range(2):
        _, reward, _, info = env.step(_actions(seed))
        expected = hlc_reward(info["similarities"], info["z"], env.reference_latents, rcfg)
        assert torch.allclose(reward, expected["reward"], atol=1e-6)
        assert torch.allclose(info["reward_clip"], info["similarities"].mean(1), atol=1e-6)
        assert torch.allclose(info["reward_latent"], expected["latent"])
    assert info["similarities"].std() > 0  # the pelvis moves: the per-step values differ


def test_reference_latents_are_fixed_unit_encodings(llc, motion_lib):
    env = _env(llc, motion_lib, num_reference_latents=32, seed=3)
    assert env.reference_latents.shape == (32, 64)
    assert torch.allclose(env.reference_latents.norm(dim=-1), torch.ones(32), atol=1e-5)
    again = _env(llc, motion_lib, num_reference_latents=32, seed=3)
    assert torch.equal(env.reference_latents, again.reference_latents)
    other = _env(llc, motion_lib, num_reference_latents=32, seed=4)
    assert not torch.equal(env.reference_latents, other.reference_latents)


def test_similarity_decreases_terminate_and_reset(llc, motion_lib):
    et = EarlyTerminationConfig(mode="successive", reset_prob=1.0, head_rule=False)
    env = _env(llc, motion_lib, DecreasingGoal(), early_termination=et)
    first_obs = env.reset()["obs"].clone()
    _, _, dones, info = env.step(_actions())
    assert not dones.any()  # 4 decreases so far (the first step has no predecessor)
    _, reward, dones, info = env.step(_actions(1))
    # the 8th successive decrease is the 4th LLC step of the 2nd HLC step
    assert dones.all() and info["terminate"].all() and not info["time_outs"].any()
    assert info["et_similarity_resets"] == N and info["et_fall_resets"] == 0
    assert info["scored"].tolist() == [[True, True, True, True, False]] * N
    sims = info["similarities"][:, :4]
    assert torch.allclose(reward, hlc_reward(sims, info["z"], env.reference_latents)["reward"], atol=1e-6)
    # reset: new episode from the standing pose, counters cleared
    assert env.progress.tolist() == [0] * N
    assert torch.allclose(env._obs, first_obs, atol=1e-5)
    _, _, dones, _ = env.step(_actions(2))
    assert not dones.any()


def test_truncated_similarity_resets_are_bootstrapped_and_falls_still_terminate(llc, motion_lib):
    et = EarlyTerminationConfig(mode="successive", reset_prob=1.0, head_rule=False, similarity_end="truncate")
    env = _env(llc, motion_lib, DecreasingGoal(), early_termination=et)
    first_obs = env.reset()["obs"].clone()
    env.step(_actions())
    _, _, dones, info = env.step(_actions(1))
    # the same reset at the same LLC step as with "terminate", but a time-out to PPO (value bootstrapped)
    assert dones.all() and info["time_outs"].all() and not info["terminate"].any()
    assert info["et_similarity_resets"] == N and info["time_out_resets"] == 0
    assert info["scored"].tolist() == [[True, True, True, True, False]] * N
    assert torch.allclose(env._obs, first_obs, atol=1e-5)
    # the 8th decrease on the episode's last LLC step: one time-out, counted once, as a similarity reset
    for end in ("terminate", "truncate"):
        et = EarlyTerminationConfig(mode="successive", reset_prob=1.0, head_rule=False, similarity_end=end)
        env = _env(llc, motion_lib, DecreasingGoal(), early_termination=et, episode_length=9)
        env.reset()
        env.step(_actions())
        _, _, dones, info = env.step(_actions(1))
        assert dones.all() and info["et_similarity_resets"] == N and info["time_out_resets"] == 0
        assert info["time_outs"].all() == (end == "truncate") and info["terminate"].all() == (end == "terminate")
    # a fall is still a termination
    et = EarlyTerminationConfig(mode="successive", head_height=1.40, similarity_end="truncate")
    env = _env(llc, motion_lib, early_termination=et)
    env.reset()
    _, _, dones, info = env.step(_actions())
    assert dones.all() and info["terminate"].all() and not info["time_outs"].any()
    with pytest.raises(ValueError, match="similarity_end"):
        EarlyTerminationConfig(similarity_end="bootstrap")


def test_similarity_rule_off_for_the_ablation(llc, motion_lib):
    env = _env(llc, motion_lib, DecreasingGoal(), early_termination=NO_ET)
    env.reset()
    for seed in range(4):
        _, _, dones, info = env.step(_actions(seed))
        assert not dones.any() and info["et_similarity_resets"] == 0


def test_head_height_rule(llc, motion_lib):
    # the standing head (1.35 m) is below a 1.40 m threshold: every env terminates at its first LLC step
    et = EarlyTerminationConfig(mode="off", head_height=1.40)
    env = _env(llc, motion_lib, early_termination=et)
    env.reset()
    _, _, dones, info = env.step(_actions())
    assert dones.all() and info["terminate"].all() and info["et_fall_resets"] == N
    assert info["scored"][:, 0].all() and not info["scored"][:, 1:].any()
    # the default 0.15 m rule does not fire on a standing humanoid
    env = _env(llc, motion_lib, early_termination=EarlyTerminationConfig(mode="off"))
    env.reset()
    _, _, dones, info = env.step(_actions())
    assert not dones.any() and (info["head_height"] > 1.2).all()


def test_time_outs_are_not_terminations(llc, motion_lib):
    env = _env(llc, motion_lib, episode_length=8, early_termination=NO_ET)
    env.reset()
    _, _, dones, info = env.step(_actions())
    assert not dones.any()
    _, _, dones, info = env.step(_actions(1))
    assert dones.all() and info["time_outs"].all() and not info["terminate"].any()
    assert info["time_out_resets"] == N
    assert info["scored"].tolist() == [[True, True, True, False, False]] * N  # LLC steps 6-8 of the episode
    assert env.progress.tolist() == [0] * N


def test_record_states_and_input_errors(llc, motion_lib):
    env = _env(llc, motion_lib, record_states=True, early_termination=NO_ET)
    env.reset()
    _, _, _, info = env.step(_actions())
    assert info["llc_qpos"].shape == (N, 5, 35) and info["llc_body_pos"].shape == (N, 5, 15, 3)
    assert torch.allclose(info["llc_body_pos"][:, -1, 0, 2], env.env.backend.body_pos()[:, 0, 2])
    with pytest.raises(ValueError, match="actions must have shape"):
        env.step(torch.zeros(N, 28))
    with pytest.raises(ValueError, match="num_envs"):
        HLCEnvConfig(num_envs=0)


def test_first_episodes_are_staggered(llc, motion_lib):
    env = _env(llc, motion_lib, num_envs=8, episode_length=10, stagger_episodes=True, early_termination=NO_ET)
    env.reset()
    start = env.progress.clone()
    assert start.min() >= 0 and start.max() < 10 and len(set(start.tolist())) > 1
    _, _, dones, info = env.step(torch.rand(8, 64) * 2 - 1)
    assert torch.equal(dones, start >= 5) and torch.equal(dones, info["time_outs"])  # 5 LLC steps reach 10
    assert dones.any() and not dones.all()
    assert torch.equal(info["scored"].sum(1)[dones], 10 - start[dones])
