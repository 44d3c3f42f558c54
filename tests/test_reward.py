"""Reward maths (Eq. 3), z_hat selection, early termination, the projection MLP's learning signal."""

import math

import pytest
import torch
import torch.nn.functional as F

from anyskill.reward.clip_target import ClipTargetSimilarity
from anyskill.reward.early_termination import EarlyTermination, EarlyTerminationConfig
from anyskill.reward.projection import StateProjection, fit_projection
from anyskill.reward.similarity import RewardConfig, hlc_reward, latent_alignment_reward, nearest_reference


def test_nearest_reference_is_max_cosine():
    refs = F.normalize(torch.randn(16, 8), dim=-1)
    z = F.normalize(refs[[3, 7]] + 0.01 * torch.randn(2, 8), dim=-1)
    z_hat, idx = nearest_reference(z, refs)
    assert idx.tolist() == [3, 7]
    assert torch.equal(z_hat, refs[[3, 7]])


def test_eq3_values():
    refs = F.normalize(torch.randn(4, 8), dim=-1)
    z = refs[:1].clone()
    sims = torch.tensor([[0.2, 0.3, 0.25, 0.25, 0.25]])
    out = hlc_reward(sims, z, refs, RewardConfig(w_clip=0.5, w_style=0.3))
    assert out["clip"].item() == pytest.approx(0.25)
    assert out["latent"].item() == pytest.approx(1.0)  # z on a reference: exp(0)
    assert out["reward"].item() == pytest.approx(0.5 * 0.25 + 0.3)
    # Moving away from every reference lowers the latent alignment term as exp(-4 d).
    far = F.normalize(-refs.sum(0, keepdim=True), dim=-1)
    d = (far - nearest_reference(far, refs)[0]).norm(dim=-1)
    assert latent_alignment_reward(far, refs).item() == pytest.approx(math.exp(-4 * d.item()), rel=1e-5)


def test_official_variant():
    refs = F.normalize(torch.randn(4, 8), dim=-1)
    z = F.normalize(torch.randn(1, 8), dim=-1)
    sims = torch.full((1, 5), 0.3)
    out = hlc_reward(sims, z, refs, RewardConfig(variant="official"))
    expected_style = ((z @ refs.T).max() + 1) / 2
    assert out["reward"].item() == pytest.approx(0.5 * 0.8 * 0.3 + 0.4 * expected_style.item(), rel=1e-6)


def test_clip_target_similarity_is_the_cosine_to_a_unit_target_buffer():
    sim = ClipTargetSimilarity(torch.tensor([[3.0, 0.0]]))  # stored as the unit vector (1, 0)
    assert torch.equal(sim.target, torch.tensor([1.0, 0.0])) and "target" in dict(sim.named_buffers())
    f = F.normalize(torch.tensor([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), dim=-1)
    assert torch.allclose(sim(f), torch.tensor([1.0, 0.0, 2**-0.5]))
    assert sim.to(torch.float64).target.dtype == torch.float64  # moves with the module


def _run(et, sims, head=None):
    fired = []
    for s in sims:
        out = et.step(torch.tensor([s]), torch.tensor([1.0 if head is None else head]))
        fired.append(bool(out["reset"][0]))
    return fired


def test_early_termination_fires_after_eight_successive_decreases():
    et = EarlyTermination(1, EarlyTerminationConfig(reset_prob=1.0))
    sims = [1.0 - 0.01 * k for k in range(10)]  # first step has no predecessor, then 9 decreases
    fired = _run(et, sims)
    assert fired.index(True) == 8 and sum(fired) == 1


def test_early_termination_successive_vs_cumulative():
    zigzag = [0.5, 0.4, 0.45, 0.35, 0.4, 0.3, 0.35, 0.25, 0.3, 0.2, 0.25, 0.15, 0.2, 0.1, 0.15, 0.05, 0.1, 0.0]
    assert not any(_run(EarlyTermination(1, EarlyTerminationConfig(reset_prob=1.0)), zigzag))
    assert any(_run(EarlyTermination(1, EarlyTerminationConfig(mode="cumulative", reset_prob=1.0)), zigzag))
    assert not any(_run(EarlyTermination(1, EarlyTerminationConfig(mode="off")), [1 - 0.01 * k for k in range(30)]))


def test_early_termination_probability_and_head_rule():
    n = 4000
    et = EarlyTermination(n, EarlyTerminationConfig(), generator=torch.Generator().manual_seed(0))
    for k in range(9):
        out = et.step(torch.full((n,), 1.0 - 0.01 * k), torch.ones(n))
    assert out["similarity"].float().mean().item() == pytest.approx(0.8, abs=0.03)
    out = et.step(torch.full((n,), 2.0), torch.full((n,), 0.1))
    assert out["fallen"].all() and out["reset"].all()
    off = EarlyTermination(2, EarlyTerminationConfig(mode="off", head_rule=False))
    assert not off.step(torch.zeros(2), torch.zeros(2))["reset"].any()


def test_projection_learns_a_smooth_map():
    """The MLP must fit a nonlinear function of body positions far better than chance on held-out data."""
    torch.manual_seed(0)
    pos = torch.randn(3000, 15, 3) * 0.3
    w = torch.randn(45, 32)
    feats = torch.tanh(pos.reshape(-1, 45) @ w)
    net = StateProjection(num_bodies=15, embed_dim=32, hidden=(128,))
    fit = fit_projection(net, pos, feats, epochs=30, lr=3e-3)
    assert fit.val_loss[-1] < 0.25 * fit.val_loss[0]
    assert fit.final_val_cosine > 0.9


def test_projection_save_load(tmp_path):
    net = StateProjection(hidden=(64, 64), embed_dim=16)
    x = torch.randn(5, 15, 3)
    back = StateProjection.load(net.save(tmp_path / "p.pt"))
    assert torch.equal(back(x), net(x))
