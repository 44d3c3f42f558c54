"""`train_llc` / `anyskill train-llc`: a few smoke epochs on the real humanoid, outputs, exact resume."""

import json

import pytest
import torch
import yaml
from rl_games.algos_torch import torch_ext

from anyskill.cli import main as cli_main
from anyskill.data import MOTIONS_DIR
from anyskill.llc import load_llc
from anyskill.llc.calm.train import latest_checkpoint, train_llc

NUM_ENVS = 4
EPOCHS = 3  # 24 steps: some episodes end (the untrained humanoid falls within ~0.5-1 s), so lengths are logged
HORIZON = 8  # smoke: 8 steps x 4 envs = one minibatch of 32, 2 mini-epochs


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("motions") / "motions.yaml"
    entries = [{"file": str(MOTIONS_DIR / f"{name}.npz"), "weight": 1.0}
               for name in ("amp_humanoid_walk", "authored_idle_stand")]
    path.write_text(yaml.safe_dump({"motions": entries}))
    return path


@pytest.fixture(scope="module")
def first_run(manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "llc_smoke"
    seen = []
    result = train_llc("smoke", motions=manifest, out_dir=out, num_envs=NUM_ENVS, max_epochs=EPOCHS, progress=False,
                       epoch_callbacks=[lambda agent, stats: seen.append(int(stats["epoch"]))])
    return result, seen


def test_training_writes_checkpoint_tensorboard_and_info(first_run, manifest):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result, seen = first_run
    assert seen == [1, 2, 3] and result.epochs == EPOCHS and result.samples == EPOCHS * HORIZON * NUM_ENVS
    assert result.checkpoint.parent == result.out_dir / "nn" and f"_ep_{EPOCHS}_" in result.checkpoint.name
    info = json.loads((result.out_dir / "train_info.json").read_text())
    assert info["epochs"] == EPOCHS and info["samples"] == result.samples and info["manifest"] == str(manifest)
    assert info["clips"] == ["amp_humanoid_walk", "idle_stand"] and info["env"]["state_init"] == "hybrid"
    events = EventAccumulator(str(result.tensorboard_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    for tag in ("calm/disc_loss", "calm/disc_demo_accuracy", "calm/disc_agent_accuracy", "calm/disc_accuracy",
                "calm/episode_length", "calm/style_reward", "episode_lengths/step", "rewards/step"):
        assert tag in tags, tag
    llc = load_llc(result.checkpoint)
    assert llc.action_dim == 28 and llc.latent_dim == 64


def test_resume_continues_counters_normalisers_and_optimiser(first_run, manifest, tmp_path):
    result, _ = first_run
    before = torch_ext.load_checkpoint(str(result.checkpoint))
    out = tmp_path / "resumed"
    assert cli_main(["train-llc", "--route", "calm", "--scale", "smoke", "--motions", str(manifest), "--envs",
                     str(NUM_ENVS), "--epochs", str(EPOCHS + 1), "--out", str(out), "--resume", str(result.checkpoint),
                     "--no-progress"]) == 0
    after = torch_ext.load_checkpoint(str(latest_checkpoint(out)))
    batch = HORIZON * NUM_ENVS
    assert (after["epoch"], after["frame"]) == (EPOCHS + 1, (EPOCHS + 1) * batch)
    # Adam continued: one more epoch = 2 mini-epochs x 1 minibatch steps on top of the restored count
    assert float(after["optimizer"]["state"][0]["step"]) == float(before["optimizer"]["state"][0]["step"]) + 2
    m0, m1 = before["model"], after["model"]
    # normalisers continued from the checkpoint, by one epoch: obs by the batch, the AMP one by the agent frames
    # and amp_batch_size x disc_steps demo frames, without a second seeding
    assert float(m1["running_mean_std.count"]) == pytest.approx(float(m0["running_mean_std.count"]) + batch)
    assert float(m1["amp_norm.count"]) == pytest.approx(float(m0["amp_norm.count"]) + batch + 32 * 10)
    assert not torch.equal(m1["a2c_network.actor.out.weight"], m0["a2c_network.actor.out.weight"])


def test_resumed_run_on_the_humanoid_continues_bit_for_bit(manifest, tmp_path):
    """0 -> 5 epochs equals 0 -> 3, stop, resume -> 5: physics snapshot, replay buffer and every generator restored."""
    kw = dict(motions=manifest, num_envs=NUM_ENVS, progress=False, overrides={"save_frequency": 3})
    straight = train_llc("smoke", out_dir=tmp_path / "straight", max_epochs=5, **kw)
    stopped = train_llc("smoke", out_dir=tmp_path / "stopped", max_epochs=3, **kw)
    resumed = train_llc("smoke", out_dir=tmp_path / "resumed", max_epochs=5, resume=stopped.checkpoint, **kw)
    a = torch_ext.load_checkpoint(str(straight.checkpoint))["model"]
    b = torch_ext.load_checkpoint(str(resumed.checkpoint))["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert [s["style_reward"] for s in resumed.epoch_stats] == [s["style_reward"] for s in straight.epoch_stats[3:]]


def test_latest_checkpoint_and_errors(tmp_path, first_run):
    nn = tmp_path / "nn"
    nn.mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoints"):
        latest_checkpoint(tmp_path)
    for name in ("last_x_ep_25_rew_1.0.pth", "last_x_ep_100_rew__0.5_.pth", "last_x_ep_50_rew_2.0.pth"):
        (nn / name).write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "last_x_ep_100_rew__0.5_.pth"
    with pytest.raises(ValueError, match="unknown scale"):
        train_llc("huge")
    with pytest.raises(FileNotFoundError, match="cannot resume"):
        train_llc("smoke", resume=tmp_path / "missing.pth")


@pytest.mark.slow
def test_env_factory_runs_on_the_warp_backend():
    """The GPU training path (MuJoCo Warp) builds and steps the LLC env; here on Warp's CPU device."""
    from anyskill.config import LLCEnvSettings
    from anyskill.llc.calm.train import build_env_factory
    from anyskill.llc.motions import load_motions
    from anyskill.sim.warp_backend import WarpBackend

    lib, _ = load_motions()
    env = build_env_factory(lib, 2, LLCEnvSettings(), "cpu", 0, backend="warp")()
    assert isinstance(env.backend, WarpBackend)
    env.reset()
    obs, _, _, extras = env.step(torch.zeros(2, env.num_actions))
    assert obs["obs"].shape == (2, 223) and torch.isfinite(extras["amp_obs"]).all()
    with pytest.raises(ValueError, match="backend must be"):
        build_env_factory(lib, 2, LLCEnvSettings(), "cpu", 0, backend="isaac")


def test_tracking_and_key_pose_rewards_on_reference_states(manifest, tmp_path):
    """The tracking reward is 1 for the clip's own reference state one step later and falls with the distance; the
    key pose of a window is its frame farthest from the window's first, and reaching it earns the key-pose reward."""
    from anyskill.humanoid.obs import policy_obs

    agents = []
    train_llc("smoke", motions=manifest, out_dir=tmp_path / "r", num_envs=NUM_ENVS, max_epochs=1, progress=False,
              overrides={"calm": {"key_pose_reward_weight": 1.0, "track_reward_weight": 1.0}},
              epoch_callbacks=[lambda agent, stats: agents.append(agent)])
    agent = agents[0]
    lib, n, schedule = agent.motion_lib, agent.num_actors, agent.latent_schedule

    def ref_obs(clip, t):
        s = lib.state_at(torch.full((n,), clip), torch.full((n,), t))
        return policy_obs(s.body_pos, s.body_rot, s.body_vel, s.body_ang_vel)

    schedule.track_clip[:] = 0
    schedule.track_time[:] = 0.5
    perfect = schedule.track_reward(ref_obs(0, 0.5 + agent.calm.motion_dt), torch.zeros(n, dtype=torch.bool))
    assert torch.allclose(perfect, torch.ones(n), atol=1e-5)
    schedule.track_clip[:] = 0
    schedule.track_time[:] = 0.5
    lagging = schedule.track_reward(ref_obs(0, 0.2), torch.zeros(n, dtype=torch.bool))
    assert (lagging < 0.999).all() and (lagging > 0).all()
    done = schedule.track_reward(ref_obs(0, 0.6), torch.ones(n, dtype=torch.bool))  # an episode end stops tracking
    assert (schedule.track_clip == -1).all() and (done > 0).all()

    grid = agent.grid
    ends = grid.clip_start[:1] + torch.tensor([40])
    key = agent.windows.key_pose(ends, agent.net_cfg.enc_steps)
    rows = torch.arange(int(ends) - agent.net_cfg.enc_steps + 1, int(ends) + 1).clamp_min(int(grid.clip_start[0]))
    poses = agent.windows.poses[rows]
    brute = poses[(poses - poses[0]).pow(2).sum(-1).argmax()]
    assert torch.allclose(key[0], brute)
    schedule.key_pose_on[:] = True
    schedule.key_pose[:] = key
    at_key = torch.cat([key.expand(n, -1), torch.zeros(n, 223 - 43)], dim=1)
    assert torch.allclose(schedule.key_pose_reward(at_key, torch.zeros(n, dtype=torch.bool)), torch.ones(n))
    schedule.key_pose_reward(at_key, torch.ones(n, dtype=torch.bool))
    assert not schedule.key_pose_on.any()  # ends with the episode
