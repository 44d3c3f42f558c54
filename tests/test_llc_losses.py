import math

import pytest
import torch

from anyskill.llc.calm import losses


def _linear_disc(in_dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(1, in_dim, generator=g, requires_grad=True)
    return w, (lambda x: x @ w.T)


def test_bce_terms_match_the_formula_with_and_without_negatives():
    agent = torch.tensor([[-2.0], [0.5], [1.0]])
    demo = torch.tensor([[3.0], [-1.0]])
    negative = torch.tensor([[0.2], [-0.7]])
    x = torch.zeros(2, 3, requires_grad=True)
    demo_from_x = demo + 0.0 * x.sum()  # constant in x: no gradient penalty
    w = torch.zeros(1, 4)

    def bce(logits, target):
        p = torch.sigmoid(logits)
        return -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).mean()

    terms = losses.conditional_discriminator_loss(agent, demo_from_x, x, w, [w])
    expected = 0.5 * (bce(agent, 0.0) + bce(demo, 1.0))
    assert torch.allclose(terms.bce, expected, atol=1e-6)
    assert torch.allclose(terms.total, expected, atol=1e-6)
    assert terms.negative_bce is None

    with_neg = losses.conditional_discriminator_loss(agent, demo_from_x, x, w, [w], negative_logits=negative)
    assert torch.allclose(with_neg.bce, expected + 0.5 * bce(negative, 0.0), atol=1e-6)
    assert torch.allclose(with_neg.agent_accuracy, torch.tensor(1 / 3))
    assert torch.allclose(with_neg.demo_accuracy, torch.tensor(0.5))


def test_chance_logits_give_log2():
    z = torch.zeros(4, 1)
    x = torch.zeros(4, 2, requires_grad=True)
    terms = losses.conditional_discriminator_loss(z, z + 0 * x.sum(), x, torch.zeros(1, 1), [torch.zeros(1, 1)])
    assert terms.bce.item() == pytest.approx(math.log(2.0))


def test_gradient_penalty_zero_for_constant_and_norm_squared_for_linear():
    x = torch.randn(16, 5, requires_grad=True)
    const = torch.full((16, 1), 0.3) + 0.0 * x.sum(-1, keepdim=True)
    assert losses.gradient_penalty(const, x).item() == 0.0
    unused = torch.full((16, 1), 0.3, requires_grad=True)
    assert losses.gradient_penalty(unused, x).item() == 0.0

    w, disc = _linear_disc(5)
    gp = losses.gradient_penalty(disc(x), x)
    assert gp.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-5)
    assert gp.item() > 0
    gp.backward()  # differentiable w.r.t. the discriminator weights: d||w||^2/dw = 2w
    assert torch.allclose(w.grad, 2 * w.detach(), atol=1e-5)


def test_gradient_penalty_requires_grad_inputs():
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match="requires_grad"):
        losses.gradient_penalty(x.sum(-1, keepdim=True), x)


def test_total_combines_regularisers_with_their_weights():
    x = torch.randn(8, 3, requires_grad=True)
    w, disc = _linear_disc(3, seed=1)
    extra = torch.randn(4, 4)
    demo = disc(x)
    agent = torch.randn(8, 1)
    t = losses.conditional_discriminator_loss(agent, demo, x, w, [w, extra], logit_reg=0.01, grad_penalty_weight=5.0,
                                              weight_decay=1e-4)
    wn = w.detach().pow(2).sum()
    expected = t.bce + 0.01 * wn + 5.0 * wn + 1e-4 * (wn + extra.pow(2).sum())
    assert torch.allclose(t.total, expected, rtol=1e-5)
    assert torch.allclose(t.grad_penalty, wn, rtol=1e-5)


def test_alignment_zero_for_identical_and_mean_squared_distance_otherwise():
    e = torch.nn.functional.normalize(torch.randn(10, 8), dim=-1)
    assert losses.alignment_loss(e, e.clone()).item() == 0.0
    other = torch.nn.functional.normalize(torch.randn(10, 8), dim=-1)
    expected = ((e - other) ** 2).sum(-1).mean()
    assert losses.alignment_loss(e, other).item() == pytest.approx(expected.item(), rel=1e-6)


def test_uniformity_lower_for_spread_than_clustered_points():
    spread = torch.cat([torch.eye(4), -torch.eye(4)])  # 8 points spread over S^3
    base = torch.nn.functional.normalize(torch.ones(1, 4), dim=-1)
    noise = 0.05 * torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    clustered = torch.nn.functional.normalize(base + noise, dim=-1)
    assert losses.uniformity_loss(spread) < losses.uniformity_loss(clustered) - 1.0
    assert losses.uniformity_loss(base.expand(5, 4)).item() == pytest.approx(0.0, abs=1e-6)  # all identical: log 1
    two = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert losses.uniformity_loss(two).item() == pytest.approx(-2.0 * 2.0, rel=1e-6)  # -t * ||e0 - e1||^2


def test_uniformity_brute_force_and_error():
    e = torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    vals = [torch.exp(-2 * (e[i] - e[j]).pow(2).sum()) for i in range(7) for j in range(i + 1, 7)]
    assert losses.uniformity_loss(e).item() == pytest.approx(torch.log(torch.stack(vals).mean()).item(), rel=1e-5)
    with pytest.raises(ValueError, match="at least 2"):
        losses.uniformity_loss(e[:1])


def test_encoder_regularization_weights():
    e0, e1, eb = (torch.nn.functional.normalize(torch.randn(6, 4), dim=-1) for _ in range(3))
    total, align, uniform = losses.encoder_regularization(e0, e1, eb, 1.0, 0.5)
    assert torch.allclose(total, align + 0.5 * uniform)
    assert torch.allclose(align, losses.alignment_loss(e0, e1))


def test_style_reward_formula_floor_and_monotonicity():
    logits = torch.tensor([-3.0, 0.0, 2.0, 50.0])
    r = losses.style_reward(logits, scale=2.0)
    expected = -torch.log(1 - torch.sigmoid(logits[:3])) * 2.0
    assert torch.allclose(r[:3], expected, atol=1e-6)
    assert r[1].item() == pytest.approx(2 * math.log(2.0))
    assert r[3].item() == pytest.approx(-2.0 * math.log(1e-4), rel=1e-5)  # clamped at 1 - sigmoid = 1e-4
    assert torch.all(r[1:] > r[:-1])


def test_action_bound_loss():
    mu = torch.tensor([[0.5, -0.9, 1.0], [1.5, -2.0, 0.0]])
    b = losses.action_bound_loss(mu, 1.0)
    assert b[0].item() == 0.0
    assert b[1].item() == pytest.approx(0.25 + 1.0)
