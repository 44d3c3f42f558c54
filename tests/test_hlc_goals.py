"""Goals of the high-level policy: the pose goal's descriptor and similarity, image loading, clip look-up."""

import math

import numpy as np
import pytest
import torch

from anyskill.hlc.clip_goals import load_image
from anyskill.hlc.goal import Goal, HumanoidStates, clip_qpos
from anyskill.hlc.goal_spec import find_clip, goal_from_spec
from anyskill.hlc.pose_goal import PoseGoal, pose_descriptor
from anyskill.humanoid import rotations as rot


@pytest.fixture(scope="module")
def squat():
    return find_clip("authored_squat")


def _states(clip, frames):
    pos, body_rot = clip.body_states()
    q = np.concatenate([clip.root_pos, clip.root_rot, clip.dof_pos], axis=1)
    return HumanoidStates(torch.as_tensor(pos[frames], dtype=torch.float32),
                          torch.as_tensor(body_rot[frames], dtype=torch.float32),
                          torch.as_tensor(q[frames], dtype=torch.float32))


def _yaw(states: HumanoidStates, angle: float, shift=(0.0, 0.0)) -> HumanoidStates:
    """The same poses turned by ``angle`` about the world z axis and moved horizontally by ``shift`` m."""
    n, b = states.body_pos.shape[:2]
    q = rot.quat_from_axis_angle(torch.tensor([[0.0, 0.0, 1.0]]), torch.tensor([angle])).expand(n * b, 4)
    pos = rot.quat_rotate(q, states.body_pos.reshape(-1, 3)).reshape(n, b, 3) + torch.tensor([*shift, 0.0])
    body_rot = rot.quat_mul(q, states.body_rot.reshape(-1, 4)).reshape(n, b, 4)
    return HumanoidStates(pos, body_rot, states.qpos)


def test_pose_goal_is_one_at_the_target_and_falls_with_distance(squat):
    mid = squat.num_frames // 2
    goal = PoseGoal.from_clip(squat)  # the middle frame
    assert isinstance(goal, Goal) and "squat" in goal.description and goal.spec["clip"] == "squat"
    states = _states(squat, [mid, mid - 15, 0])
    sim = goal.similarity(states)
    err = goal.error(states)
    assert sim[0].item() == pytest.approx(1.0, abs=1e-5) and err[0].item() == pytest.approx(0.0, abs=1e-5)
    assert err[1] > 0.02 and err[2] > err[1]  # the standing start is farther from the squat than 0.5 s before it
    assert torch.all(sim[1:] < 1.0) and sim[2] < sim[1]
    assert torch.allclose(sim, torch.exp(-err / goal.sigma))


def test_pose_descriptor_ignores_heading_and_horizontal_position(squat):
    states = _states(squat, list(range(0, squat.num_frames, 7)))
    base = pose_descriptor(states.body_pos, states.root_rot)
    moved = _yaw(states, 2.1, (3.0, -1.5))
    assert torch.allclose(pose_descriptor(moved.body_pos, moved.root_rot), base, atol=1e-5)
    lifted = HumanoidStates(states.body_pos + torch.tensor([0.0, 0.0, 0.3]), states.body_rot, states.qpos)
    goal = PoseGoal.from_clip(squat, 0.0)
    assert torch.allclose(goal.error(lifted) - goal.error(states), torch.zeros(len(base)), atol=0.3 + 1e-5)
    assert torch.all(goal.error(lifted) > 0.29)  # heights count: a jump (or a fall) is an error


def test_pose_goal_errors_and_spec_round_trip(squat):
    with pytest.raises(ValueError, match="target_body_pos"):
        PoseGoal(torch.zeros(15, 2))
    with pytest.raises(ValueError, match="sigma"):
        PoseGoal(torch.zeros(15, 3), sigma=0.0)
    with pytest.raises(ValueError, match="outside clip"):
        PoseGoal.from_clip(squat, squat.duration + 1.0)
    goal = PoseGoal.from_clip(squat, 1.0, sigma=0.1)
    rebuilt = goal_from_spec(goal.spec)
    states = _states(squat, [0, 10, 20])
    assert torch.allclose(rebuilt.similarity(states), goal.similarity(states))
    direct = PoseGoal(goal.target_body_pos, sigma=0.1)
    assert torch.allclose(goal_from_spec(direct.spec).error(states), direct.error(states))
    with pytest.raises(ValueError, match="needs a ClipModel"):
        goal_from_spec({"kind": "text", "prompt": "wave"})
    with pytest.raises(ValueError, match="unknown goal kind"):
        goal_from_spec({"kind": "smell"})


def test_find_clip_by_stem_name_or_path(squat, tmp_path):
    assert find_clip("squat").name == squat.name  # library clip name
    path = squat.save(tmp_path / "mine.npz")
    assert find_clip(str(path)).num_frames == squat.num_frames
    with pytest.raises(ValueError, match="no motion clip 'moonwalk'"):
        find_clip("moonwalk")
    q = clip_qpos(squat, 0.0, centre=True)
    assert q.shape == (35,) and q[0] == 0.0 and q[1] == 0.0 and q[2] == pytest.approx(squat.root_pos[0, 2])


def test_load_image_from_files_and_arrays(tmp_path):
    import imageio.v2 as imageio

    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    imageio.imwrite(tmp_path / "goal.png", rgba)
    img = load_image(tmp_path / "goal.png")
    assert img.shape == (20, 30, 3) and img.dtype == torch.uint8 and int(img[0, 0, 0]) == 200
    grey = load_image(np.full((8, 8), 0.5))
    assert grey.shape == (8, 8, 3) and int(grey[0, 0, 1]) == math.floor(127.5)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="RGB"):
        load_image(np.zeros((4, 4, 2)))


class _CountingRenderer:
    """Stands in for StateRenderer: records how many frames were drawn; frame colour encodes the root x."""

    def __init__(self):
        self.frames = 0

    def render_qpos(self, qpos):
        self.frames += len(qpos)
        out = torch.zeros(len(qpos), 8, 8, 3, dtype=torch.uint8)
        out[..., 0] = (qpos[:, 0:1, None] * 50).clamp(0, 255).to(torch.uint8)
        return out


class _PixelClip:
    """Stands in for ClipModel: the 'feature' of a frame is its mean red value along axis 0 of a 2-D space."""

    class spec:
        description = "test stand-in"
        weights = "none"

    def encode_images(self, frames):
        r = frames[..., 0].float().mean(dim=(1, 2)) / 255
        return torch.nn.functional.normalize(torch.stack([r, 1 - r], dim=-1), dim=-1)


def test_render_interval_and_env_subset_limit_rendering(squat):
    from anyskill.hlc.clip_goals import ClipFeatureGoal

    states = _states(squat, [0, 10, 20, 30])
    renderer = _CountingRenderer()
    goal = ClipFeatureGoal(_PixelClip(), renderer, torch.tensor([1.0, 0.0]), "render", None, render_interval=5)
    first = goal.similarity(states)
    for _ in range(4):
        assert torch.equal(goal.similarity(states), first)  # held between renders
    assert renderer.frames == 4
    goal.similarity(states)  # the 6th call renders again
    assert renderer.frames == 8

    renderer = _CountingRenderer()
    goal = ClipFeatureGoal(_PixelClip(), renderer, torch.tensor([1.0, 0.0]), "render", None, render_envs=2)
    initial = goal.similarity(states)  # the first call fills every env
    moved = HumanoidStates(states.body_pos, states.body_rot, states.qpos.clone())
    moved.qpos[:, 0] += 2.0  # every env changes colour
    a = goal.similarity(moved)
    assert (a != initial).sum() == 2  # one window of 2 envs refreshed, the others held
    b = goal.similarity(moved)
    assert renderer.frames == 4 + 2 + 2
    full = ClipFeatureGoal(_PixelClip(), _CountingRenderer(), torch.tensor([1.0, 0.0]), "render", None)
    full = full.similarity(moved)
    assert torch.allclose(b, full)  # after two windows of 2 every env of 4 was refreshed
    with pytest.raises(ValueError, match="render_interval"):
        ClipFeatureGoal(_PixelClip(), renderer, torch.tensor([1.0, 0.0]), "render", None, render_interval=0)
