"""CLIP goals end to end (render -> encode -> reward), the state projection's data and training, and the timing of
rendered vs projected HLC iterations.

Random CLIP weights only (this machine has no network): the similarities are meaningless — random ViT-B-32 features
of very different renders have cosine ≈ 0.9997-1.0 — so these tests check the pipeline, never the scores' quality.
"""

import pytest
import torch

import anyskill.sim.render as render  # before open_clip: see anyskill.sim.render
from anyskill.hlc.clip_goals import ImageGoal, TextGoal
from anyskill.hlc.goal import HumanoidStates, clip_qpos
from anyskill.hlc.goal_spec import find_clip
from anyskill.hlc.projection_data import (
    RANDOM_WEIGHTS_NOTE,
    collect_projection_pairs,
    measure_projection_speedup,
    train_projection,
)
from anyskill.hlc.train import train_hlc
from anyskill.reward.clip_model import ClipModel, ClipSpec
from anyskill.reward.projection import StateProjection

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clip_model():
    return ClipModel(ClipSpec(weights="random"))


@pytest.fixture(scope="module")
def renderer(model):
    return render.StateRenderer(model.mj_model(), render.CameraSpec())


def _clip_states(clip, times):
    qpos = torch.stack([torch.as_tensor(clip_qpos(clip, t, centre=True), dtype=torch.float32) for t in times])
    from anyskill.motion.clip import skeleton_for

    pos, rot = skeleton_for(clip.model).forward_kinematics(qpos[:, :3], qpos[:, 3:7], qpos[:, 7:])
    return HumanoidStates(pos, rot, qpos)


def test_text_goal_renders_encodes_and_trains(clip_model, renderer, llc_path, motion_lib, tmp_path):
    goal = TextGoal(clip_model, renderer, "a person raises both arms")
    assert "RANDOM" in goal.description and goal.spec["clip_weights"] == "random"
    squat = find_clip("authored_squat", motion_lib)
    states = _clip_states(squat, [0.0, 1.0])
    sim = goal.similarity(states)
    manual = clip_model.encode_images(renderer.render_qpos(states.qpos)) @ clip_model.encode_text(goal.prompt)[0]
    assert sim.shape == (2,) and torch.allclose(sim, manual, atol=1e-5)
    result = train_hlc(goal, llc_path, "smoke", tmp_path, num_envs=2, max_epochs=1, motion_lib=motion_lib,
                       overrides={"horizon_length": 1, "minibatch_size": 2}, progress=False)
    stats = result.stats.iloc[0]
    assert -1.0 <= stats["similarity"] <= 1.0 and stats["hlc_env_steps"] == 2
    assert "RANDOM" in result.provenance["clip_weights"]


def test_image_goal_from_a_clip_frame_matches_that_pose(clip_model, renderer, motion_lib):
    squat = find_clip("authored_squat", motion_lib)
    goal = ImageGoal.from_clip_frame(clip_model, renderer, squat, 1.0)
    assert goal.image.shape == (224, 224, 3) and goal.spec["clip"] == squat.name
    sim = goal.similarity(_clip_states(squat, [1.0]))
    assert sim.item() == pytest.approx(1.0, abs=1e-4)  # the very same render
    with pytest.raises(ValueError, match="needs a StateRenderer"):
        TextGoal(clip_model, None, "wave")
    with pytest.raises(ValueError, match="needs a trained StateProjection"):
        TextGoal(clip_model, renderer, "wave", reward_source="projection")


def test_projection_pairs_train_and_drive_the_reward(clip_model, renderer, llc_path, motion_lib):
    from anyskill.llc import load_llc

    data = collect_projection_pairs(load_llc(llc_path), clip_model, renderer, num_frames=32, num_envs=4,
                                    latent_steps=4, motion_lib=motion_lib)
    assert data.body_pos.shape == (32, 15, 3) and data.features.shape == (32, 512)
    assert torch.allclose(data.features.norm(dim=-1), torch.ones(32), atol=1e-4)
    assert data.body_pos[:, 0, 2].std() > 0  # the frames differ
    net, fit = train_projection(data, epochs=40, batch_size=8)
    assert fit.train_loss[-1] < 0.2 * fit.train_loss[0]  # the MSE signal trains the MLP
    assert fit.final_val_cosine > 0.9  # with random CLIP this is not a quality measure:
    assert "random" in RANDOM_WEIGHTS_NOTE.lower()  # features are nearly constant
    goal = TextGoal(clip_model, None, "a person squats", reward_source="projection", projection=net)
    states = HumanoidStates(data.body_pos[:3], torch.zeros(3, 15, 4), torch.zeros(3, 35))
    sim = goal.similarity(states)
    assert sim.shape == (3,) and torch.all(sim.abs() <= 1.0)


def test_projection_speedup_is_measured(clip_model, renderer, llc_path, motion_lib, tmp_path):
    projection = StateProjection()
    timing = measure_projection_speedup(llc_path, clip_model, renderer, projection, num_envs=2, epochs=2,
                                        horizon_length=1, motion_lib=motion_lib)
    print(timing)
    assert timing["speedup"] > 1.0 and timing["frames_per_iteration"] == 10
    assert timing["paper_speedup"] == 10.4 and "RANDOM" in timing["clip_weights"]
