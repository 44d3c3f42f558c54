"""The general (multi-prompt) policy: per-env prompt goals, the env that appends each env's CLIP text feature and
draws prompts per episode, early termination against each env's previous similarity (the authors' bug measured it
against 0), training, conditioning a trained policy on any prompt, and the CLI (``--prompts``, ``--enhance``).

Random CLIP weights and a random state projection (no network, no rendering): the similarities are meaningless,
these tests check the mechanics."""

import json

import pytest
import torch
import torch.nn.functional as F

import anyskill.sim.render  # noqa: F401  (before open_clip: see anyskill.sim.render)
from anyskill.hlc.clip_goals import TextGoal
from anyskill.hlc.env import HLCEnvConfig
from anyskill.hlc.general import GeneralHighLevelEnv, PromptSetGoal, evaluate_prompts
from anyskill.hlc.goal import HumanoidStates
from anyskill.hlc.goal_spec import goal_from_spec
from anyskill.hlc.policy import load_hlc
from anyskill.hlc.rollout import rollout
from anyskill.hlc.train import hlc_config, train_hlc
from anyskill.llc import load_llc
from anyskill.reward.clip_model import ClipModel, ClipSpec
from anyskill.reward.early_termination import EarlyTerminationConfig
from anyskill.reward.projection import StateProjection
from anyskill.text import OfflineEnhancer, PromptSet

PROMPTS = PromptSet.from_texts(["wave hi", "kick", "run"], [2.0, 1.0, 1.0], name="test")


@pytest.fixture(scope="module")
def clip_model():
    return ClipModel(ClipSpec(weights="random"))


@pytest.fixture(scope="module")
def projection_file(tmp_path_factory):
    torch.manual_seed(0)
    return StateProjection().save(tmp_path_factory.mktemp("proj") / "projection.pth")


@pytest.fixture(scope="module")
def projection(projection_file):
    return StateProjection.load(projection_file)


def make_goal(clip_model, projection, prompts=PROMPTS):
    return PromptSetGoal(clip_model, None, prompts, "projection", projection)


def make_env(goal, llc_path, motion_lib, num_envs=6, **cfg):
    cfg = HLCEnvConfig(num_envs=num_envs, stagger_episodes=False, **cfg)
    return GeneralHighLevelEnv(cfg, load_llc(llc_path), goal, motion_lib)


def test_each_env_is_scored_against_its_own_prompt(clip_model, projection, llc_path, motion_lib):
    goal = make_goal(clip_model, projection)
    env = make_env(goal, llc_path, motion_lib)
    env.reset()
    goal.assign(None, torch.tensor([0, 1, 2, 0, 1, 2]))
    states = HumanoidStates.from_backend(env.inner.env.backend)
    feats = F.normalize(projection(states.body_pos.float()), dim=-1)
    text = F.normalize(clip_model.encode_text(list(PROMPTS.texts)), dim=-1)
    expected = (feats * text[goal.prompt_ids]).sum(-1)
    assert torch.allclose(goal.similarity(states), expected, atol=1e-5)
    with pytest.raises(ValueError, match="prompt ids must be in"):
        goal.assign(None, torch.tensor([3]))
    goal.assign(None, torch.tensor([0]))
    with pytest.raises(RuntimeError, match="1 prompts assigned"):
        goal.similarity(states)


def test_observation_carries_the_prompt_feature_and_prompts_change_only_between_episodes(
        clip_model, projection, llc_path, motion_lib):
    goal = make_goal(clip_model, projection)
    env = make_env(goal, llc_path, motion_lib, episode_length=10)
    assert env.observation_space.shape == (223 + 512,)
    obs = env.reset()["obs"]
    assert obs.shape == (6, 735) and torch.equal(obs[:, 223:], goal.text_features[goal.prompt_ids])
    ended_any = False
    for _ in range(6):
        before = goal.prompt_ids.clone()
        obs_dict, reward, dones, infos = env.step(torch.randn(6, 64))
        assert torch.equal(infos["prompt_ids"], before) and reward.shape == (6,)
        assert torch.equal(goal.prompt_ids[~dones], before[~dones])  # running episodes keep their prompt
        assert torch.equal(obs_dict["obs"][:, 223:], goal.text_features[goal.prompt_ids])
        ended_any |= bool(dones.any())
    assert ended_any  # 10-step episodes end within 6 HLC steps (30 LLC steps)


def test_early_termination_measures_decreases_against_the_previous_similarity(
        clip_model, projection, llc_path, motion_lib):
    """The fix of the authors' bug: a similarity that falls but stays positive triggers early termination."""

    class FadingGoal(PromptSetGoal):
        calls = 0

        def similarity(self, states):  # 0.9, 0.899, ...: always positive, always decreasing
            self.calls += 1
            return torch.full((states.body_pos.shape[0],), 0.9 - 0.001 * self.calls)

    goal = FadingGoal(clip_model, None, PROMPTS, "projection", projection)
    et = EarlyTerminationConfig(reset_prob=1.0, head_rule=False)
    env = make_env(goal, llc_path, motion_lib, num_envs=4, early_termination=et)
    env.reset()
    first = env.step(torch.randn(4, 64))[3]
    assert first["et_similarity_resets"] == 0  # 4 decreases after 5 LLC steps
    _, _, dones, second = env.step(torch.randn(4, 64))
    assert second["et_similarity_resets"] == 4 and dones.all() and second["terminate"].all()  # 8th decrease


def test_general_policy_trains_and_is_conditioned_on_any_prompt(clip_model, projection, llc_path, motion_lib, tmp_path):
    goal = make_goal(clip_model, projection)
    result = train_hlc(goal, llc_path, "smoke", tmp_path, num_envs=4, max_epochs=2, motion_lib=motion_lib,
                       progress=False)
    assert len(result.epoch_stats) == 2
    policy = load_hlc(result.checkpoint)
    assert (policy.obs_dim, policy.condition_dim) == (735, 512)
    assert policy.config["goal_spec"]["prompts"]["texts"] == list(PROMPTS.texts)
    with pytest.raises(ValueError, match="needs its prompt"):
        policy.act(torch.zeros(2, 223))
    kick = TextGoal(clip_model, None, "kick", "projection", projection)
    z = policy.condition_on(kick.text_feature).act(torch.zeros(2, 223))
    assert z.shape == (2, 64) and torch.allclose(z.norm(dim=-1), torch.ones(2))
    unseen = TextGoal(clip_model, None, "somersault", "projection", projection)  # not in the set
    assert not torch.equal(policy.condition_on(unseen.text_feature).act(torch.zeros(2, 223)), z)
    r = rollout(policy, llc_path, unseen, seconds=0.5, render=False, motion_lib=motion_lib)
    assert r.similarity.shape == (16,)
    table = evaluate_prompts(result.checkpoint, llc_path, [kick, unseen], seconds=0.5, num_envs=2,
                             motion_lib=motion_lib)
    assert list(table["prompt"]) == ["kick", "somersault"] and table["mean_similarity"].abs().le(1).all()
    rebuilt = goal_from_spec(policy.config["goal_spec"], clip_model, None, projection, motion_lib)
    assert isinstance(rebuilt, PromptSetGoal) and rebuilt.prompt_set == PROMPTS
    with pytest.raises(ValueError, match="512-D text features"):
        policy.condition_on(torch.ones(3))


def test_the_general_policy_uses_its_own_ppo_numbers():
    paper = hlc_config("paper", device="cpu", general=True)["params"]["config"]
    assert (paper["horizon_length"], paper["minibatch_size"], paper["max_epochs"]) == (32, 16384, 800)
    assert hlc_config("paper", device="cpu")["params"]["config"]["horizon_length"] == 4


def test_text_goal_records_its_enhancement(clip_model, projection):
    e = OfflineEnhancer().enhance("wave hi")
    goal = TextGoal(clip_model, None, e, "projection", projection)
    assert goal.prompt == "raised arm bent at the elbow" and "enhanced from 'wave hi', offline" in goal.description
    assert goal.spec["enhancement"]["original"] == "wave hi" and goal.spec["enhancement"]["model"] == "offline"
    assert torch.allclose(goal.text_feature, F.normalize(clip_model.encode_text(e.text)[0], dim=0))


@pytest.mark.slow
def test_cli_trains_a_general_policy_on_enhanced_prompts_and_rolls_it_out(llc_path, projection_file, tmp_path,
                                                                          capsys):
    from anyskill.cli import main

    prompts = tmp_path / "prompts.yaml"
    prompts.write_text("texts:\n  - {weight: 1, text: wave hi}\n  - {weight: 1, text: kick}\n")
    proj = str(projection_file)
    common = ["--clip-weights", "random", "--reward-source", "projection", "--projection", proj]
    out = tmp_path / "general"
    assert main(["train-hlc", "--prompts", str(prompts), "--enhance", "offline", "--llc", str(llc_path), *common,
                 "--scale", "smoke", "--epochs", "1", "--num-envs", "2", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "'wave hi' -> 'raised arm bent at the elbow' (offline)" in printed
    spec = torch.load(out / "hlc.pth", weights_only=False)["hlc_config"]["goal_spec"]
    assert spec["prompts"]["texts"] == ["raised arm bent at the elbow", "left leg forward, right leg retreats"]
    assert [e["enhancer"] for e in spec["enhancements"]] == ["offline", "offline"]
    with pytest.raises(SystemExit, match="general policy: give its prompt with --text"):
        main(["rollout", str(out / "hlc.pth"), "--llc", str(llc_path), "--no-render"])
    assert main(["rollout", str(out / "hlc.pth"), "--llc", str(llc_path), "--text", "kick", "--enhance", "offline",
                 "--reward-source", "projection", "--projection", proj, "--seconds", "0.3", "--no-render",
                 "--out", str(tmp_path / "roll")]) == 0
    assert "left leg forward, right leg retreats" in capsys.readouterr().out
    single = tmp_path / "single"
    assert main(["train-hlc", "--text", "wave hi", "--enhance", "offline", "--llc", str(llc_path), *common,
                 "--scale", "smoke", "--epochs", "1", "--num-envs", "2", "--out", str(single), "--no-progress"]) == 0
    prov = json.loads((single / "provenance.json").read_text())["provenance"]
    assert prov["config"]["goal_spec"]["enhancement"]["original"] == "wave hi"
    assert "RANDOM" in prov["clip_weights"]
