"""Held-out skill evaluation: the pose distance, its identification logic, and a standing controller's result."""

import math

import pytest
import torch

from anyskill.data import default_library
from anyskill.humanoid import rotations as rot
from anyskill.llc.evaluate import untrained_llc
from anyskill.llc.skills import (
    chamfer_distance,
    clip_distance_matrix,
    clip_pose_features,
    evaluate_skills,
    pose_features,
)


@pytest.fixture(scope="module")
def lib():
    torch.set_num_threads(1)
    return default_library()


def test_pose_features_ignore_position_and_heading_but_keep_height():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(4, 15, 3, generator=g)
    root_rot = rot.quat_normalize(torch.randn(4, 4, generator=g))
    yaw = rot.quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]).expand(4, 3), torch.rand(4, generator=g) * 6.0)
    moved = rot.quat_rotate(yaw[:, None].expand(4, 15, 4), pos) + torch.tensor([2.0, -1.0, 0.0])
    assert torch.allclose(pose_features(moved, rot.quat_mul(yaw, root_rot)), pose_features(pos, root_rot), atol=1e-5)
    lifted = pose_features(pos + torch.tensor([0.0, 0.0, 0.3]), root_rot)
    assert torch.allclose(lifted[..., 2] - pose_features(pos, root_rot)[..., 2], torch.full((4, 15), 0.3), atol=1e-5)


def test_chamfer_is_symmetric_zero_on_itself_and_penalises_missing_poses(lib):
    feats = clip_pose_features(lib, 1 / 30)
    names = lib.clip_names
    stand, wave = feats[names.index("idle_stand")], feats[names.index("wave_right_hand")]
    assert chamfer_distance(wave, wave) == 0.0
    assert chamfer_distance(stand, wave) == pytest.approx(chamfer_distance(wave, stand), rel=1e-6)
    still = stand[:1].expand(90, -1, -1)  # one standing pose held: every frame of it is in the waving clip...
    one_way = (still[:, None] - wave[None]).norm(dim=-1).mean(-1).min(1).values.mean()
    assert chamfer_distance(still, wave) > 2 * float(one_way)  # ...but the raised-arm frames are never shown
    assert chamfer_distance(still, stand) < chamfer_distance(still, wave)


def test_clips_identify_themselves(lib):
    d = clip_distance_matrix(lib)
    assert (d.values.diagonal() == 0).all()
    assert (d.values.argmin(1) == range(lib.num_clips)).all()
    assert d.values[d.values > 0].min() > 0.02  # every pair of clips is told apart by more than 2 cm


def test_standing_controller_stands_and_is_identified_as_standing_only(lib):
    """The untrained laptop-size policy starts at the rest pose: it stands under every latent, so only the idle clip
    is identified and the accuracy is chance level."""
    res = evaluate_skills(untrained_llc("laptop"), lib, seconds=3.0, idle_seconds=6.0)
    s = res.summary
    assert s["survival_rate"] == 1.0 and s["idle_survived"] is True
    assert set(res.per_clip["identified_as"]) == {"idle_stand"}
    assert s["top1_accuracy"] == pytest.approx(1 / lib.num_clips)
    assert res.distances.shape == (lib.num_clips, lib.num_clips)
    assert math.isnan(res.per_clip["fall_time_s"].iloc[0])
    with pytest.raises(ValueError, match="seconds"):
        evaluate_skills(untrained_llc("smoke"), lib, seconds=0.0)
