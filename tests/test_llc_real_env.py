"""CALM on the real MuJoCo HumanoidEnv and MotionLibrary: a few smoke epochs through the rl-games Runner."""

import pytest
import torch
from rl_games.common.algo_observer import DefaultAlgoObserver
from rl_games.torch_runner import Runner

from anyskill.llc import calm_config, load_llc, register_calm

pytestmark = pytest.mark.slow

NUM_ENVS = 4


@pytest.fixture(scope="module")
def motion_lib():
    from anyskill.data import MOTIONS_DIR
    from anyskill.motion import load_motion
    from anyskill.motion.library import MotionLibrary

    return MotionLibrary([load_motion(MOTIONS_DIR / f"amp_humanoid_{n}.npz") for n in ("walk", "run")])


def test_smoke_training_on_humanoid_env_and_llc_inference(motion_lib, tmp_path):
    from anyskill.rl.vecenv import register_rl_games_env
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    def make_env(**kwargs):
        cfg = EnvConfig(num_envs=NUM_ENVS, state_init="random", fall_init_prob=0.0, seed=kwargs.get("seed", 0))
        return HumanoidEnv(cfg, motion_lib=motion_lib)

    probe = make_env()
    obs_width = probe.reset()["obs"].shape[1]
    assert probe.observation_space.shape == (obs_width,)  # rl-games sizes the policy from the space

    register_rl_games_env("calm_test_humanoid", make_env)
    observer = DefaultAlgoObserver()
    runner = register_calm(Runner(observer))
    runner.load(calm_config("smoke", NUM_ENVS, env_name="calm_test_humanoid", train_dir=str(tmp_path), max_epochs=3))
    runner.run({"train": True})
    agent = observer.algo
    assert [int(s["epoch"]) for s in agent.epoch_stats] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(s["disc_loss"])) for s in agent.epoch_stats)

    agent.save(str(tmp_path / "llc"))
    llc = load_llc(tmp_path / "llc.pth")
    assert (llc.obs_dim, llc.action_dim, llc.latent_dim, llc.frame_dim) == (obs_width, 28, 64, 125)
    _, _, windows = motion_lib.sample_amp_windows(3, llc.enc_steps, 1.0 / 30.0)
    z = llc.encode(windows)
    assert torch.allclose(z.norm(dim=-1), torch.ones(3), atol=1e-5)
    actions = llc.act(probe.reset()["obs"][:3], z)
    assert actions.shape == (3, 28) and actions.abs().max() <= 1.0
    _, _, demo = motion_lib.sample_amp_windows(3, llc.disc_steps, 1.0 / 30.0)
    assert llc.discriminator_score(demo.reshape(3, -1), z).shape == (3,)
