"""CALM agent through the rl-games Runner on a fake vec-env (seconds on CPU): losses fall, checkpoints round-trip,
a resumed run continues bit for bit, distinct windows are encoded once, per-network learning rates."""

from pathlib import Path

import pytest
import torch
from llc_fakes import FakeHumanoidEnv
from rl_games.algos_torch import torch_ext
from rl_games.common.algo_observer import DefaultAlgoObserver
from rl_games.torch_runner import Runner

from anyskill.config import CALMSettings
from anyskill.llc import calm_config, load_llc, register_calm
from anyskill.llc.calm.ppo import SampleBuffer, exploration_probabilities, gae_advantages, update_dtype
from anyskill.llc.calm.resume import RESUME_SUFFIX
from anyskill.llc.calm.windows import encode_unique
from anyskill.rl.vecenv import register_rl_games_env

ENV = "calm_test_fake"
NUM_ENVS = 8
EPOCHS = 20


def _config(train_dir: Path, max_epochs: int, **calm):
    calm = {"lr_actor": None, "lr_critic": None, "lr_encoder": None, "lr_disc": None, "track_reward_weight": 0.0,
            "key_pose_reward_weight": 0.0,
            "latent_from_reset_prob": 0.0, **calm}
    cfg = calm_config("smoke", NUM_ENVS, env_name=ENV, train_dir=str(train_dir), max_epochs=max_epochs,
                      overrides={"learning_rate": 1e-3, "save_frequency": 5, "calm": calm})
    cfg["params"]["network"].update(amp_frame_dim=6, enc_steps=20, enc_stride=1, disc_steps=10, actor_out_bias=None)
    return cfg


def _train(cfg, checkpoint: str | None = None):
    register_rl_games_env(ENV, lambda **kw: FakeHumanoidEnv(num_envs=NUM_ENVS, **kw))
    observer = DefaultAlgoObserver()
    runner = register_calm(Runner(observer))
    runner.load(cfg)
    runner.run({"train": True, "checkpoint": checkpoint})
    return observer.algo


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("calm_runs")
    torch.manual_seed(0)
    agent = _train(_config(train_dir, EPOCHS, negative_disc_samples=False))
    return agent, train_dir


def test_sample_buffer_ring_and_sampling():
    buf = SampleBuffer(5, {"a": (2,), "b": ()}, "cpu")
    with pytest.raises(RuntimeError, match="empty"):
        buf.sample(1)
    buf.store(a=torch.arange(6.0).reshape(3, 2), b=torch.tensor([0.0, 1.0, 2.0]))
    assert len(buf) == 3
    buf.store(a=torch.arange(6.0, 12.0).reshape(3, 2), b=torch.tensor([3.0, 4.0, 5.0]))
    assert len(buf) == 5
    assert sorted(buf.data["b"].tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0]  # the oldest row was overwritten
    s = buf.sample(50)
    assert s["a"].shape == (50, 2) and set(s["b"].tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert torch.equal(s["a"][:, 0], 2 * s["b"])  # rows stay aligned across fields
    with pytest.raises(KeyError, match="fields"):
        buf.store(a=torch.zeros(1, 2))


def test_exploration_probabilities_span_one_to_zero():
    p = exploration_probabilities(5)
    assert p[0].item() == pytest.approx(1 - torch.exp(torch.tensor(-10.0)).item())
    assert p[-1].item() == 0.0 and torch.all(p[1:] <= p[:-1])
    assert exploration_probabilities(1).tolist() == [1.0]


def test_gae_bootstraps_time_outs_but_not_terminations():
    # two envs, two steps; env 0 terminates at step 0, env 1 times out at step 0 (bootstrap value 5)
    rewards = torch.ones(2, 2, 1)
    values = torch.zeros(2, 2, 1)
    next_values = torch.tensor([[[0.0], [5.0]], [[2.0], [2.0]]])
    dones = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    adv = gae_advantages(rewards, values, next_values, dones, gamma=0.5, tau=1.0)
    assert adv[0, 0, 0].item() == pytest.approx(1.0)  # terminated: r only, recursion cut
    assert adv[0, 1, 0].item() == pytest.approx(1.0 + 0.5 * 5.0)  # timed out: r + γ V_boot, recursion cut
    assert adv[1, 0, 0].item() == pytest.approx(1.0 + 0.5 * 2.0)


def test_settings_and_config_validation():
    with pytest.raises(ValueError, match="unknown option"):
        CALMSettings.from_config({"disc_coeff": 1})
    with pytest.raises(ValueError, match="latent_steps_min"):
        CALMSettings.from_config({"latent_steps_min": 5, "latent_steps_max": 5})
    with pytest.raises(ValueError, match="scale"):
        calm_config("huge", 4)
    paper = calm_config("paper", 1024)["params"]
    c = paper["config"]
    assert (c["gamma"], c["tau"], c["learning_rate"], c["horizon_length"], c["minibatch_size"], c["mini_epochs"],
            c["e_clip"], c["critic_coef"], c["bounds_loss_coef"]) == (0.99, 0.95, 2e-5, 32, 4096, 6, 0.2, 5.0, 10.0)
    assert c["calm"]["amp_batch_size"] == 512 and c["calm"]["amp_minibatch_size"] == 1024
    assert paper["network"]["actor_units"] == [1024, 1024, 512] and paper["network"]["latent_dim"] == 64
    smoke = calm_config("smoke", 6)["params"]["config"]
    assert (smoke["horizon_length"] * 6) % smoke["minibatch_size"] == 0


def test_training_discriminator_learns_and_logs(trained):
    agent, train_dir = trained
    stats = agent.epoch_stats
    assert [int(s["epoch"]) for s in stats] == list(range(1, EPOCHS + 1))
    first = sum(s["disc_bce"] for s in stats[:3]) / 3
    last = sum(s["disc_bce"] for s in stats[-3:]) / 3
    assert last < first - 0.1, (first, last)
    final_acc = sum(s["disc_accuracy"] for s in stats[-3:]) / 3
    assert final_acc > 0.75, final_acc
    for key in ("enc_align", "enc_uniform", "style_reward", "disc_grad_penalty", "episode_length"):
        assert key in stats[-1]
    assert stats[-1]["style_reward"] > 0
    assert len(agent.replay_buffer) > 0
    events = list((train_dir / "calm" / "summaries").glob("events.*"))
    assert events


def _latest_checkpoint(train_dir: Path) -> Path:
    return max((train_dir / "calm" / "nn").glob("*.pth"), key=lambda p: p.stat().st_mtime)


def test_checkpoint_round_trip_gives_identical_actions(trained, tmp_path):
    agent, _ = trained
    path = tmp_path / "llc"
    agent.save(str(path))
    llc = load_llc(f"{path}.pth")
    assert llc.latent_dim == 64 and llc.obs_dim == agent.model.calm.obs_dim and llc.action_dim == 4
    env = FakeHumanoidEnv(num_envs=5, seed=3)
    obs = env.reset()["obs"] * 3.0
    _, _, windows = env.motion_lib.sample_amp_windows(5, 20, 1 / 30)
    agent.model.eval()
    with torch.no_grad():
        z_agent = agent.model.encode(windows)
        res = agent.model({"is_train": False, "obs": obs.clone(), "latents": z_agent, "prev_actions": None})
    z = llc.encode(windows)
    assert torch.equal(z, z_agent)
    assert torch.equal(llc.act(obs, z), res["mus"].clamp(-1, 1))
    amp = torch.randn(5, 60)
    assert torch.equal(llc.discriminator_score(amp, z), agent.model.disc_logits(amp, z).squeeze(-1).detach())
    assert torch.all(llc.style_reward(amp, z) >= 0)
    # the normalisers came from the checkpoint, not fresh defaults
    assert not torch.allclose(llc.model.amp_norm.mean.float(), torch.zeros(6))
    assert not torch.allclose(llc.model.running_mean_std.running_mean.float(), torch.zeros(13))
    with pytest.raises(ValueError, match="act expects"):
        llc.act(obs[:, :5], z)


def test_load_llc_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_llc(tmp_path / "missing.pth")
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a CALM checkpoint"):
        load_llc(tmp_path / "other.pth")


def test_resume_restores_exact_state_and_continues(trained, tmp_path):
    agent, train_dir = trained
    ckpt = _latest_checkpoint(train_dir)
    saved = torch_ext.load_checkpoint(str(ckpt))
    assert saved["epoch"] == EPOCHS and "calm_config" in saved
    assert Path(str(ckpt) + RESUME_SUFFIX).is_file()
    assert len(list((train_dir / "calm" / "nn").glob(f"*{RESUME_SUFFIX}"))) == 1  # only the newest keeps one

    register_rl_games_env(ENV, lambda **kw: FakeHumanoidEnv(num_envs=NUM_ENVS, **kw))
    runner = register_calm(Runner(DefaultAlgoObserver()))
    runner.load(_config(tmp_path, EPOCHS + 2, negative_disc_samples=False))
    fresh = runner.algo_factory.create("calm", base_name="run", params=runner.params)
    fresh.restore(str(ckpt))
    restored = fresh.model.state_dict()
    for key, value in saved["model"].items():
        assert torch.equal(restored[key], value), key
    opt_saved, opt_now = saved["optimizer"]["state"], fresh.optimizer.state_dict()["state"]
    assert opt_saved.keys() == opt_now.keys()
    assert all(torch.equal(opt_saved[k]["exp_avg"], opt_now[k]["exp_avg"]) for k in opt_saved)
    assert fresh.epoch_num == EPOCHS

    fresh.train()
    assert [int(s["epoch"]) for s in fresh.epoch_stats] == [EPOCHS + 1, EPOCHS + 2]
    changed = fresh.model.state_dict()["a2c_network.actor.out.weight"]
    assert not torch.equal(changed, saved["model"]["a2c_network.actor.out.weight"])


def test_resumed_run_continues_bit_for_bit(tmp_path):
    """0 -> 8 epochs in one run equals 0 -> 5, stop, resume 5 -> 8 (replay buffer, RNGs, env state restored)."""
    def run(train_dir, epochs, checkpoint=None):
        torch.manual_seed(3)
        cfg = _config(train_dir, epochs, negative_disc_samples=True)
        cfg["params"]["config"]["save_frequency"] = 5
        return _train(cfg, checkpoint)

    straight = run(tmp_path / "straight", 8)
    run(tmp_path / "stopped", 5)
    resumed = run(tmp_path / "resumed", 8, str(_latest_checkpoint(tmp_path / "stopped")))
    assert [int(s["epoch"]) for s in resumed.epoch_stats] == [6, 7, 8]
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert [s["style_reward"] for s in resumed.epoch_stats] == [s["style_reward"] for s in straight.epoch_stats[5:]]


def test_resume_without_state_file_warns(trained, tmp_path):
    agent, train_dir = trained
    ckpt = _latest_checkpoint(train_dir)
    copy = tmp_path / ckpt.name
    copy.write_bytes(ckpt.read_bytes())
    register_rl_games_env(ENV, lambda **kw: FakeHumanoidEnv(num_envs=NUM_ENVS, **kw))
    runner = register_calm(Runner(DefaultAlgoObserver()))
    runner.load(_config(tmp_path, EPOCHS + 1))
    fresh = runner.algo_factory.create("calm", base_name="run", params=runner.params)
    with pytest.warns(RuntimeWarning, match="not an exact continuation"):
        fresh.restore(str(copy))


def test_negative_samples_term_is_trained(tmp_path):
    torch.manual_seed(1)
    agent = _train(_config(tmp_path, 6, negative_disc_samples=True))
    stats = agent.epoch_stats
    assert all("disc_negative_bce" in s for s in stats)
    assert stats[-1]["disc_bce"] < stats[0]["disc_bce"]


def test_encode_unique_encodes_each_window_once_and_matches_encoding_all():
    table = torch.randn(10, 3, 4)
    seen = []

    def encode(windows):
        seen.append(len(windows))
        return windows.sum(dim=(1, 2))[:, None] * torch.ones(1, 2)

    ids = torch.tensor([3, 7, 3, 3, 0, 7])
    z = encode_unique(encode, ids, lambda u: table[u])
    assert seen == [3]
    assert torch.equal(z, table[ids].sum(dim=(1, 2))[:, None] * torch.ones(1, 2))


def test_sample_buffer_state_round_trip_and_long_fields():
    buf = SampleBuffer(4, {"x": (2,), "id": ()}, "cpu", {"id": torch.long})
    buf.store(x=torch.arange(10.0).reshape(5, 2), id=torch.arange(5))
    assert buf.data["id"].dtype == torch.long and len(buf) == 4
    copy = SampleBuffer(4, {"x": (2,), "id": ()}, "cpu", {"id": torch.long})
    copy.load_state_dict(buf.state_dict())
    assert torch.equal(copy.data["x"], buf.data["x"]) and torch.equal(copy.data["id"], buf.data["id"])
    buf.store(x=torch.zeros(1, 2), id=torch.tensor([9]))
    copy.store(x=torch.zeros(1, 2), id=torch.tensor([9]))
    assert torch.equal(copy.data["id"], buf.data["id"])  # the ring position came along
    with pytest.raises(ValueError, match="capacity"):
        SampleBuffer(2, {"x": (2,), "id": ()}, "cpu").load_state_dict(buf.state_dict())


def test_update_precision_choice():
    assert update_dtype("float32", "cpu") == torch.float32
    assert update_dtype("bfloat16", "cpu") == torch.bfloat16
    expected = torch.bfloat16 if torch.cpu._is_amx_tile_supported() else torch.float32
    assert update_dtype("auto", "cpu") == expected
    with pytest.raises(ValueError, match="precision"):
        CALMSettings.from_config({"precision": "fp8"})


def test_per_network_learning_rates(tmp_path):
    cfg = _config(tmp_path, 1, lr_actor=1e-4, lr_critic=2e-4, lr_encoder=3e-4, lr_disc=4e-4)
    register_rl_games_env(ENV, lambda **kw: FakeHumanoidEnv(num_envs=NUM_ENVS, **kw))
    runner = register_calm(Runner(DefaultAlgoObserver()))
    runner.load(cfg)
    agent = runner.algo_factory.create("calm", base_name="run", params=runner.params)
    groups = {g["name"]: g["lr"] for g in agent.optimizer.param_groups}
    assert groups == {"actor": 1e-4, "critic": 2e-4, "encoder": 3e-4, "disc": 4e-4}
    n_params = sum(len(g["params"]) for g in agent.optimizer.param_groups)
    assert n_params == len(list(agent.model.parameters()))
