import pytest
import torch
from rl_games.algos_torch import model_builder

from anyskill.config import CALMNetworkConfig
from anyskill.llc.calm.networks import (
    ConditionalDiscriminator,
    MotionEncoder,
    RunningNormalizer,
    StyleCatMLP,
)
from anyskill.llc.calm.registry import register_calm

SMALL = CALMNetworkConfig(latent_dim=8, amp_frame_dim=5, enc_steps=6, disc_steps=3, enc_units=(16,),
                          style_units=(8,), style_dim=4, actor_units=(16, 16), critic_units=(16,), disc_units=(16,))


def test_encoder_outputs_unit_latents_and_init():
    enc = MotionEncoder(frame_dim=5, num_steps=6, units=(32, 16), latent_dim=8, init_scale=0.1)
    z = enc(torch.randn(11, 6, 5) * 3)
    assert z.shape == (11, 8)
    assert torch.allclose(z.norm(dim=-1), torch.ones(11), atol=1e-6)
    assert torch.allclose(enc(torch.randn(11, 30)).norm(dim=-1), torch.ones(11), atol=1e-6)
    assert enc.head.weight.abs().max() <= 0.1 and enc.head.bias.abs().max() == 0
    with pytest.raises(ValueError, match="6 frames x 5"):
        enc(torch.randn(2, 5, 5))


def test_style_cat_actor_and_discriminator_shapes_and_init():
    actor = StyleCatMLP(input_dim=7, latent_dim=8, style_units=(8,), style_dim=4, units=(16, 16), out_dim=3)
    z = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    assert actor(torch.randn(5, 7), z).shape == (5, 3)
    style = actor.style(z)
    assert style.shape == (5, 4) and style.abs().max() < 1
    assert actor.style_head.weight.abs().max() <= 1.0 and actor.style_head.weight.abs().max() > 0.5
    disc = ConditionalDiscriminator(amp_dim=15, latent_dim=8, style_units=(8,), style_dim=4, units=(16,))
    assert disc(torch.randn(5, 15), z).shape == (5, 1)
    assert disc.logit_weight().abs().max() <= 1.0
    assert len(disc.weights()) == 4  # style MLP, style head, trunk, logit


def test_network_config_round_trip_and_unknown_keys():
    params = SMALL.to_params()
    assert params["name"] == "calm" and params["enc_units"] == [16]
    assert CALMNetworkConfig.from_params(params) == SMALL
    with pytest.raises(ValueError, match="unknown CALM network option"):
        CALMNetworkConfig.from_params({"name": "calm", "latent_size": 3})


def _build_model(normalize_input=True):
    register_calm()
    params = {"model": {"name": "calm"}, "network": SMALL.to_params()}
    builder = model_builder.ModelBuilder().load(params)
    return builder.build({"actions_num": 3, "input_shape": (7,), "normalize_input": normalize_input,
                          "normalize_value": True, "value_size": 1})


def test_model_built_through_rl_games_registry():
    model = _build_model()
    model.eval()
    z = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    res = model({"is_train": False, "obs": torch.randn(4, 7), "latents": z, "prev_actions": None})
    assert res["mus"].shape == (4, 3) and res["values"].shape == (4, 1) and res["actions"].shape == (4, 3)
    assert torch.allclose(res["sigmas"], torch.full((4, 3), torch.exp(torch.tensor(-2.9)).item()))
    assert model.encode(torch.randn(4, 6, 5)).norm(dim=-1).sub(1).abs().max() < 1e-5
    assert model.disc_logits(torch.randn(4, 15), z).shape == (4, 1)
    with pytest.raises(KeyError, match="latents"):
        model({"is_train": False, "obs": torch.randn(4, 7), "prev_actions": None})
    names = dict(model.named_parameters())
    assert not any("log_std" in n for n in names)  # fixed, not learned
    state = model.state_dict()
    for key in ("running_mean_std.running_mean", "value_mean_std.running_mean", "amp_norm.mean",
                "a2c_network.log_std", "a2c_network.encoder.head.weight", "a2c_network.discriminator.out.weight"):
        assert key in state


def test_critic_depends_on_latent_and_actor_on_style():
    model = _build_model().eval()
    obs = torch.randn(1, 7).expand(2, 7)
    z = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    res = model({"is_train": False, "obs": obs.clone(), "latents": z, "prev_actions": None})
    assert not torch.allclose(res["values"][0], res["values"][1])
    assert not torch.allclose(res["mus"][0], res["mus"][1])


def test_running_normalizer_matches_batch_statistics_and_clamps():
    norm = RunningNormalizer(3)
    a, b = torch.randn(100, 3) * 2 + 1, torch.randn(50, 3) * 0.5 - 2
    norm.update(a)
    norm.update(b.reshape(25, 2, 3))
    both = torch.cat([a, b]).double()
    assert torch.allclose(norm.mean, both.mean(0), atol=1e-4)
    assert torch.allclose(norm.var, both.var(0, unbiased=False), atol=1e-3)
    y = norm(torch.cat([a, b]))
    assert torch.allclose(y.mean(0), torch.zeros(3), atol=1e-3)
    assert norm(torch.full((1, 3), 1e6)).max().item() == 5.0
    before = norm.mean.clone()
    norm(torch.randn(10, 3) * 100)
    assert torch.equal(norm.mean, before)  # forward never updates
