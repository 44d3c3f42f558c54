"""The one config home: every scale profile builds, round-trips through its plain and rl-games forms, and the
rl-games configs of both policies are generated from it."""

from dataclasses import FrozenInstanceError, asdict

import pytest
import torch

from anyskill.config import (
    SCALES,
    CALMNetworkConfig,
    CALMSettings,
    HLCNetworkSettings,
    LLCEnvSettings,
    PPOSettings,
    check_scale,
    profile,
)
from anyskill.hlc.train import hlc_config
from anyskill.llc.calm.registry import calm_config
from anyskill.rl.runner import NO_BEST_CHECKPOINTS, resolve_device
from anyskill.sim.env import EnvConfig


@pytest.mark.parametrize("scale", SCALES)
def test_every_profile_builds_and_round_trips(scale):
    p = profile(scale)
    assert p.name == scale and profile(scale) is p  # built once
    assert PPOSettings.from_rl_games(p.llc.ppo.to_rl_games()) == p.llc.ppo
    assert PPOSettings.from_rl_games(p.hlc.ppo.to_rl_games()) == p.hlc.ppo
    assert PPOSettings.from_rl_games(p.hlc.general_ppo.to_rl_games()) == p.hlc.general_ppo
    assert CALMNetworkConfig.from_params(p.llc.network.to_params()) == p.llc.network
    assert CALMSettings.from_config(asdict(p.llc.calm)) == p.llc.calm
    assert HLCNetworkSettings.from_params(p.hlc.network.to_params()) == p.hlc.network
    assert LLCEnvSettings(**asdict(p.llc.env)) == p.llc.env
    EnvConfig(num_envs=2, **p.llc.env.env_options())  # the env accepts the training env's options
    with pytest.raises(FrozenInstanceError):
        p.llc.ppo.learning_rate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("scale", SCALES)
def test_rl_games_configs_are_generated_from_the_profile(scale):
    p = profile(scale)
    llc = calm_config(scale, p.llc.num_envs, device="cpu")["params"]
    assert PPOSettings.from_rl_games(llc["config"]) == p.llc.ppo.fitted(p.llc.num_envs)
    assert CALMNetworkConfig.from_params(llc["network"]) == p.llc.network
    assert CALMSettings.from_config(llc["config"]["calm"]) == p.llc.calm
    assert llc["config"]["num_actors"] == p.llc.num_envs and llc["config"]["print_stats"] == p.print_stats
    hlc = hlc_config(scale, device="cpu")["params"]
    assert PPOSettings.from_rl_games(hlc["config"]) == p.hlc.ppo.fitted(p.hlc.num_envs)
    assert HLCNetworkSettings.from_params(hlc["network"]) == p.hlc.network
    for params in (llc, hlc):  # defined once, for both policies
        assert params["config"]["save_best_after"] == NO_BEST_CHECKPOINTS and params["torch_threads"] == 1


def test_reference_values_of_the_paper_profile():
    p = profile("paper")
    assert (p.llc.num_envs, p.llc.ppo.horizon_length, p.llc.ppo.minibatch_size, p.llc.ppo.learning_rate) == (
        4096, 32, 4096, 2e-5)
    assert p.llc.network == CALMNetworkConfig() and p.llc.calm == CALMSettings(precision="auto")
    assert (p.hlc.num_envs, p.hlc.ppo.horizon_length, p.hlc.network.units) == (1024, 4, (1024, 512))
    assert p.device == "cuda:0"


def test_overrides_change_single_values_and_are_validated():
    c = calm_config("smoke", 4, overrides={"learning_rate": 1e-3, "calm": {"kl_target": 0.05},
                                           "network": {"enc_units": [32]}})["params"]
    assert c["config"]["learning_rate"] == 1e-3 and c["config"]["calm"]["kl_target"] == 0.05
    assert c["network"]["enc_units"] == [32] and c["config"]["calm"]["amp_batch_size"] == 32
    with pytest.raises(ValueError, match="unknown option"):
        calm_config("smoke", 4, overrides={"calm": {"kl_targe": 0.05}})
    with pytest.raises(ValueError, match="unknown CALM network option"):
        calm_config("smoke", 4, overrides={"network": {"enc_unit": [32]}})
    h = hlc_config("smoke", overrides={"network": {"units": (8,)}, "mini_epochs": 3})["params"]
    assert h["network"]["mlp"]["units"] == [8] and h["config"]["mini_epochs"] == 3


def test_settings_are_validated():
    with pytest.raises(ValueError, match="unknown scale"):
        check_scale("huge")
    with pytest.raises(ValueError, match="motion_weights"):
        LLCEnvSettings(motion_weights="by_size")
    with pytest.raises(ValueError, match="minibatch_size"):
        PPOSettings(horizon_length=8, minibatch_size=0, mini_epochs=1, learning_rate=1e-4, max_epochs=1,
                    save_frequency=0)
    ppo = profile("smoke").llc.ppo.fitted(6)  # 8 x 6 = 48 samples: the largest divisor <= 64
    assert ppo.minibatch_size == 48 and profile("smoke").llc.ppo.fitted(5).minibatch_size == 40


def test_default_device_falls_back_to_the_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.warns(RuntimeWarning, match="CUDA is not available"):
        assert resolve_device(None, "paper") == "cpu"
    assert resolve_device(None, "laptop") == "cpu" and resolve_device("cuda:1", "smoke") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    c = calm_config("paper", 8)["params"]
    assert c["config"]["device"] == "cuda:0" and c["torch_threads"] == "auto"
