"""The env's small batched terms (anyskill.sim.terms) on hand-made tensors, without physics."""

import torch

from anyskill.sim import terms


def test_termination_heights_and_fall_bodies_follow_the_model(model):
    heights = terms.termination_heights(model, 0.1)
    head = model.body_index("head")
    assert heights.shape == (model.num_bodies,) and heights[head] == terms.HEAD_MIN_TERMINATION_HEIGHT
    assert torch.all(heights[torch.arange(model.num_bodies) != head] == 0.1)
    assert terms.termination_heights(model, 0.3)[head] == 0.3  # the head's height is a floor, not a cap
    mask = terms.non_contact_body_mask(model)
    assert mask.sum() == model.num_bodies - 2 and not mask[model.contact_body_ids].any()


def test_fall_rule_needs_contact_and_low_body_after_the_first_step(model):
    b = model.num_bodies
    heights = terms.termination_heights(model, 0.15)
    fall_bodies = terms.non_contact_body_mask(model)
    torso = model.body_index("torso")
    force = torch.zeros(4, b, 3)
    height = torch.ones(4, b)
    force[:, torso, 2] = 1.0  # the torso touches something in every env
    height[1, torso] = 0.05  # env 1: and it is low
    height[2, torso] = 0.05  # env 2: low too, but on the first control step
    height[3, model.contact_body_ids[0]] = 0.0  # env 3: only a foot is low
    force[3] = 0.0
    progress = torch.tensor([5, 5, 1, 5])
    fallen = terms.has_fallen(force, height, heights, fall_bodies, progress)
    assert fallen.tolist() == [False, True, False, False]
    below_threshold = force * terms.CONTACT_FORCE_THRESHOLD / 2
    assert not terms.has_fallen(below_threshold, height, heights, fall_bodies, progress).any()


def test_time_out_and_no_time_limit():
    progress = torch.tensor([0, 298, 299, 1000])
    assert terms.timed_out(progress, 300).tolist() == [False, False, True, True]
    assert not terms.timed_out(progress, None).any()


def test_random_unit_quaternions_are_unit_and_reproducible():
    q = terms.random_unit_quaternions(1000, torch.Generator().manual_seed(0))
    assert q.shape == (1000, 4) and torch.allclose(q.norm(dim=-1), torch.ones(1000), atol=1e-6)
    assert torch.equal(q, terms.random_unit_quaternions(1000, torch.Generator().manual_seed(0)))
    assert q[:, 0].abs().mean() < 0.6  # spread over SO(3), not clustered at the identity
