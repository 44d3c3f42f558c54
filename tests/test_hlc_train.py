"""Training π_H through rl-games (smoke scale), its checkpoints, inference loader, rollouts and the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from hlc_fixtures import HeightGoal

from anyskill.hlc.goal_spec import find_clip
from anyskill.hlc.policy import load_hlc
from anyskill.hlc.pose_goal import PoseGoal
from anyskill.hlc.rollout import evaluate, rollout
from anyskill.hlc.train import hlc_config, train_hlc


@pytest.fixture(scope="module")
def trained(llc_path, motion_lib, tmp_path_factory):
    goal = PoseGoal.from_clip(find_clip("authored_raise_both_arms", motion_lib))
    out = tmp_path_factory.mktemp("hlc")
    return goal, train_hlc(goal, llc_path, "smoke", out, num_envs=4, max_epochs=3, motion_lib=motion_lib,
                           progress=False)


def test_paper_scale_config_matches_the_reference():
    c = hlc_config("paper", device="cpu")["params"]
    cfg, net = c["config"], c["network"]
    assert (cfg["num_actors"], cfg["horizon_length"], cfg["minibatch_size"], cfg["mini_epochs"], cfg["learning_rate"],
            cfg["gamma"], cfg["tau"], cfg["e_clip"], cfg["critic_coef"], cfg["entropy_coef"], cfg["bounds_loss_coef"],
            cfg["max_epochs"]) == (1024, 4, 2048, 6, 2e-5, 0.99, 0.95, 0.2, 5.0, 0.0, 10.0, 500)
    assert cfg["normalize_input"] and cfg["normalize_value"] and cfg["normalize_advantage"] and cfg["value_bootstrap"]
    assert net["separate"] and net["mlp"]["units"] == [1024, 512] and net["mlp"]["activation"] == "relu"
    space = net["space"]["continuous"]
    assert space["mu_activation"] == "tanh" and space["fixed_sigma"] and space["sigma_init"]["val"] == -2.3
    smoke = hlc_config("smoke", num_envs=6)["params"]["config"]
    assert (smoke["horizon_length"] * 6) % smoke["minibatch_size"] == 0
    # time-outs (and truncated similarity resets) are bootstrapped at every scale
    assert all(hlc_config(s)["params"]["config"]["value_bootstrap"] for s in ("smoke", "laptop"))
    with pytest.raises(ValueError, match="scale"):
        hlc_config("huge")


def test_training_writes_checkpoints_stats_and_provenance(trained, llc_path):
    goal, result = trained
    stats = result.stats
    assert stats["epoch"].tolist() == [1, 2, 3]
    assert {"similarity", "reward", "reward_clip", "reward_latent", "et_similarity_resets", "et_fall_resets",
            "time_out_resets"} <= set(stats.columns)
    assert stats["hlc_env_steps"].tolist() == [16, 32, 48]  # 4 envs x horizon 4 per epoch
    assert ((stats["similarity"] > 0) & (stats["similarity"] <= 1)).all()
    on_disk = pd.read_csv(result.out_dir / "epoch_stats.csv", comment="#")
    assert len(on_disk) == 3
    prov = json.loads((result.out_dir / "provenance.json").read_text())["provenance"]
    assert prov["config"]["goal"] == goal.description and prov["clip_weights"].startswith("none")
    assert prov["config"]["llc_checkpoint"] == str(llc_path.resolve())
    assert list((result.out_dir / "runs" / "hlc" / "summaries").glob("events.*"))


def test_checkpoint_has_normalisers_frozen_sigma_and_loads(trained):
    goal, result = trained
    final = torch.load(result.checkpoint, weights_only=False)
    initial = torch.load(result.initial_checkpoint, weights_only=False)
    m, m0 = final["model"], initial["model"]
    assert torch.allclose(m["a2c_network.sigma"], torch.full((64,), -2.3))  # fixed, not learned
    assert not torch.equal(m["a2c_network.mu.weight"], m0["a2c_network.mu.weight"])  # the mean was trained
    assert not torch.allclose(m["running_mean_std.running_mean"], m0["running_mean_std.running_mean"])
    assert final["hlc_config"]["goal_spec"] == goal.spec

    policy = load_hlc(result.checkpoint)
    assert policy.description == goal.description
    obs = torch.randn(5, 223)
    z = policy.act(obs)
    assert torch.allclose(z.norm(dim=-1), torch.ones(5)) and torch.equal(z, policy.act(obs))
    mu, sigma = policy.mean_action(obs)
    assert mu.abs().max() < 1 and torch.allclose(sigma, torch.full_like(sigma, np.exp(-2.3)))
    noisy = policy.act(obs, deterministic=False, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, z) and torch.allclose(noisy.norm(dim=-1), torch.ones(5))
    with pytest.raises(ValueError, match="expects observations"):
        policy.act(torch.zeros(2, 10))
    with pytest.raises(FileNotFoundError):
        load_hlc(result.out_dir / "missing.pth")
    with pytest.raises(ValueError, match="not a high-level policy"):
        load_hlc(llc_path_of(result))


def llc_path_of(result):
    return json.loads((result.out_dir / "provenance.json").read_text())["provenance"]["config"]["llc_checkpoint"]


def test_rollout_writes_states_video_and_curve(trained, llc_path, motion_lib, tmp_path):
    goal, result = trained
    r = rollout(result.checkpoint, llc_path, goal, seconds=0.5, seed=0, out_dir=tmp_path, motion_lib=motion_lib)
    t = 1 + 3 * 5  # start frame + ceil(0.5 s / (1/6 s)) HLC steps x 5 LLC frames
    assert r.qpos.shape == (t, 35) and r.body_pos.shape == (t, 15, 3) and r.similarity.shape == (t,)
    assert r.frames.shape == (t, 224, 224, 3) and r.latents.shape == (3, 64)
    assert np.allclose(r.similarity, np.exp(-r.pose_error / goal.sigma), atol=1e-5)
    for key in ("states", "similarity_csv", "similarity_png", "video"):
        assert r.files[key].is_file() and r.files[key].stat().st_size > 200, key
    saved = np.load(r.files["states"])
    assert np.allclose(saved["body_pos"], r.body_pos)
    again = rollout(result.checkpoint, llc_path, goal, seconds=0.5, seed=0, render=False, motion_lib=motion_lib)
    assert np.array_equal(again.body_pos, r.body_pos)  # deterministic
    ev = evaluate(result.checkpoint, llc_path, goal, seconds=0.5, num_envs=2, motion_lib=motion_lib)
    assert ev.pose_error.shape == (2,) and np.allclose(ev.pose_error, r.pose_error[1:].mean(), atol=1e-4)


def test_cli_train_hlc_with_a_pose_clip_and_rollout(llc_path, tmp_path, capsys):
    from anyskill.cli import main

    out = tmp_path / "run"
    assert main(["train-hlc", "--pose-clip", "authored_squat", "--pose-time", "1.0", "--llc", str(llc_path),
                 "--scale", "smoke", "--epochs", "1", "--num-envs", "2", "--out", str(out), "--no-progress",
                 "--early-termination", "truncate"]) == 0
    assert (out / "hlc.pth").is_file() and "squat@1.00s" in capsys.readouterr().out
    assert '"similarity_end": "truncate"' in (out / "provenance.json").read_text()  # the option is recorded
    with pytest.raises(ValueError, match="give one of them"):
        main(["train-hlc", "--pose-clip", "authored_squat", "--llc", str(llc_path), "--scale", "smoke",
              "--no-early-termination", "--early-termination", "truncate"])
    assert main(["rollout", str(out / "hlc.pth"), "--llc", str(llc_path), "--seconds", "0.3", "--no-render",
                 "--out", str(tmp_path / "roll")]) == 0
    printed = capsys.readouterr().out
    assert "mean pose error" in printed and (tmp_path / "roll" / "states.npz").is_file()


def test_training_on_a_fake_goal_needs_no_spec(llc_path, motion_lib, tmp_path):
    result = train_hlc(HeightGoal(), llc_path, "smoke", tmp_path, num_envs=2, max_epochs=1, motion_lib=motion_lib,
                       progress=False)
    assert len(result.epoch_stats) == 1
