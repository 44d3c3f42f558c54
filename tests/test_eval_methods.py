"""The reward variants of Table 3 and the mean-pooled features of Table 1 on inputs with known answers, the methods'
definitions, the table assembly, and a smoke training of every method."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from hlc_fixtures import build_arm_llc

from anyskill.eval.kinematic import KinematicSettings, keyframes_to_qpos
from anyskill.eval.methods import (
    METHODS,
    TABLE_METHODS,
    MethodContext,
    measure,
    register_study,
    rollout_method,
    train_method,
)
from anyskill.eval.ratings import RatingSession, RatingStore
from anyskill.eval.tables import NOT_COLLECTED, NOT_RUN, PAPER_TABLES, RANDOM_NOTE, assemble_table, write_table
from anyskill.hlc.rollout import RolloutResult
from anyskill.hlc.variant_goals import VariantGoal
from anyskill.humanoid.model import load_humanoid
from anyskill.provenance import Provenance, read_csv
from anyskill.reward.similarity import RewardConfig, hlc_reward
from anyskill.reward.variants import TemporalWindow, clip_s_reward, velocity_reward, vlm_rm_reward


def unit(*v):
    return F.normalize(torch.tensor(v, dtype=torch.float32), dim=-1)


def test_vlm_rm_with_alpha_zero_is_the_cosine():
    x = F.normalize(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    g, b = unit(1, 2, 0, 0, 0, 0, 0, 1), unit(0, 1, 3, 0, 0, 0, 0, 0)
    assert torch.allclose(vlm_rm_reward(x, g, b, alpha=0.0), x @ g, atol=1e-6)


def test_vlm_rm_with_alpha_one_keeps_only_the_goal_baseline_direction():
    g, b = unit(1, 0, 0), unit(0, 1, 0)  # d = (1, -1, 0) / sqrt(2)
    x = torch.stack([g, unit(0, 0, 1), b])
    # (x - g)·d: 0; (-1, 0, 1)·d = -1/sqrt(2); (-1, 1, 0)·d = -sqrt(2)
    expected = torch.tensor([1.0, 1 - 0.5 * 0.5, 1 - 0.5 * 2.0])
    assert torch.allclose(vlm_rm_reward(x, g, b, alpha=1.0), expected, atol=1e-6)
    with pytest.raises(ValueError):
        vlm_rm_reward(x, g, g, alpha=0.5)
    with pytest.raises(ValueError):
        vlm_rm_reward(x, g, b, alpha=1.5)


def test_clip_s_clamps_negatives_and_scales_by_2_5():
    assert torch.allclose(clip_s_reward(torch.tensor([-0.3, 0.0, 0.2])), torch.tensor([0.0, 0.0, 0.5]))


def test_velocity_reward_peaks_at_the_target_speed_along_the_heading():
    v = torch.tensor([[0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.2, 5.0]])
    r = velocity_reward(v, target_speed=0.2, heading=(1.0, 0.0))
    assert torch.allclose(r, torch.tensor([1.0, math.exp(-0.01), math.exp(-0.01)]))


def test_hlc_reward_adds_the_weighted_velocity_term():
    z = F.normalize(torch.randn(2, 4), dim=-1)
    sims = torch.tensor([[0.1], [0.3]])
    base = hlc_reward(sims, z, z)
    cfg = RewardConfig(w_velocity=0.1)
    with pytest.raises(ValueError):
        hlc_reward(sims, z, z, cfg)
    terms = hlc_reward(sims, z, z, cfg, root_velocity=torch.tensor([[0.2, 0, 0], [0.0, 0, 0]]))
    assert torch.allclose(terms["reward"] - base["reward"], 0.1 * torch.tensor([1.0, math.exp(-0.01)]))
    assert torch.equal(base["velocity"], torch.zeros(2))


def test_temporal_window_means_the_last_values_and_forgets_on_reset():
    w = TemporalWindow(2)
    for v in (1.0, 2.0, 3.0):
        w.push(torch.tensor([v, 10 * v]))
    assert torch.allclose(w.mean(), torch.tensor([2.5, 25.0]))
    w.reset(torch.tensor([1]))
    w.push(torch.tensor([4.0, 7.0]))
    assert torch.allclose(w.mean(), torch.tensor([3.5, 7.0]))


class FakeText:
    """A TextGoal stand-in: fixed image features per call, a known text feature."""

    renderer = None
    clip_weights = "fake"
    description = "fake"
    spec = {"kind": "text"}

    def __init__(self, features, text):
        self.features, self.text_feature, self.calls = features, text, 0

    def image_features(self, states):
        self.calls += 1
        return self.features[self.calls - 1]

    def similarity(self, states):
        return self.image_features(states) @ self.text_feature


class States:
    body_pos = torch.zeros(1, 15, 3)


def test_mean_pooled_features_differ_from_pooled_scores():
    a, b = unit(1, 0), unit(0, 1)
    text = unit(1, 1)
    frames = [a[None], b[None]]
    pooled = VariantGoal(FakeText(frames, text), "mean_pooled", window=2)
    scores = VariantGoal(FakeText(frames, text), "avgpool", window=2)
    assert [float(pooled.similarity(States())) for _ in range(2)] == pytest.approx([0.70711, 1.0], abs=1e-4)
    assert [float(scores.similarity(States())) for _ in range(2)] == pytest.approx([0.70711, 0.70711], abs=1e-4)


def test_methods_are_options_of_one_pipeline():
    full = METHODS["ours_full"]
    no_et = METHODS["ours_no_et"].early_termination
    assert no_et.mode == "off" and not no_et.head_rule
    assert not METHODS["ours_no_enhance"].enhance and METHODS["ours_videoclip"].frame_score == "mean_pooled"
    assert METHODS["velocity"].w_velocity == 0.1 and full.frame_score is None and full.w_velocity == 0
    assert "not the original" in METHODS["kinematic"].label
    for table, keys in TABLE_METHODS.items():
        assert {METHODS[k].paper_row for k in keys} - {None} <= set(PAPER_TABLES[table]) | {"Ours (full)"}


def test_keyframes_interpolate_and_respect_joint_limits():
    model = load_humanoid()
    keys = np.zeros((2, 4 + model.num_dofs))
    keys[1, 0], keys[1, 4:] = -0.2, 100.0
    q = keyframes_to_qpos(keys, 3, model)
    assert q[:, 2] == pytest.approx([model.spawn_height, model.spawn_height - 0.1, model.spawn_height - 0.2])
    assert np.allclose(q[2, 7:], model.dof_upper) and np.allclose(q[:, 3], 1.0)


def test_tables_put_paper_numbers_beside_ours_and_mark_missing_ratings(tmp_path):
    measured = pd.DataFrame([
        {"method": "ours_full", "label": "Ours (full)", "clip_s": 2.0, "fell": True, "foot_sliding_m_s": 0.1},
        {"method": "ours_full", "label": "Ours (full)", "clip_s": 4.0, "fell": False, "foot_sliding_m_s": 0.3},
        {"method": "kinematic", "label": "kin", "clip_s": 1.0, "fell": False, "foot_sliding_m_s": 2.0},
    ])
    ratings = pd.DataFrame([{"rater": r, "method": "ours_full", "success": s, "natural": 5, "smooth": 5, "physics": 5}
                            for r, s in (("a", 6), ("b", 8))])
    table = assemble_table(1, measured, ratings).set_index("method")
    full = table.loc["Ours (full)"]
    assert full["paper: CLIP_S"] == 24.18 and full["ours: CLIP_S"] == 3.0 and full["ours: fall rate"] == 0.5
    assert full["ours: Success (raters)"].startswith("7.00 [") and full["ours: Success (raters)"].endswith("(n=2)")
    assert table.loc["kin", "ours: Success (raters)"] == NOT_COLLECTED and np.isnan(table.loc["kin", "paper: CLIP_S"])
    assert table.loc["AvatarCLIP [11]", "ours: CLIP_S"] == NOT_RUN and len(table) == 2 + 5
    prov = Provenance("test", clip_weights="ViT-B-32/random (RANDOM: no meaningful similarity)")
    csv, md = write_table(table.reset_index(), prov, tmp_path / "table1", "Table 1", ["a note"])
    text = md.read_text()
    assert RANDOM_NOTE in text and "a note" in text and "| Ours (full) |" in text
    assert read_csv(csv)[1]["clip_weights"].startswith("ViT-B-32/random")


def test_rollouts_register_blinded_in_the_study_and_their_ratings_reach_the_table(tmp_path):
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    result = RolloutResult(times=np.arange(4) / 30, qpos=np.zeros((4, 35)), body_pos=np.zeros((4, 15, 3)),
                           body_rot=np.zeros((4, 15, 4)), similarity=np.zeros(4), latents=np.zeros((0, 64)), goal="g",
                           frames=frames)
    store = RatingStore(tmp_path / "study.sqlite")
    codes = register_study(store, {("ours_full", "kick"): result, ("ours_no_et", "kick"): result}, tmp_path / "v")
    assert len(set(codes)) == 2 and store.prompts() == {"kick": sorted(codes)}
    session = RatingSession(store, "r1")
    assert session.current is not None and session.current.code in codes
    while not session.finished:
        session.submit({"success": 4, "natural": 5, "smooth": 6, "physics": 7})
    measured = pd.DataFrame([{"method": "ours_full", "label": "Ours (full)", "clip_s": 1.0}])
    table = assemble_table(1, measured, store.ratings()).set_index("method")
    assert table.loc["Ours (full)", "ours: Physics (raters)"] == "7.00 (n=1)"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    import anyskill.sim.render as render
    from anyskill.llc.controller import load_llc
    from anyskill.reward.clip_model import ClipModel, ClipSpec
    from anyskill.reward.projection import StateProjection
    from anyskill.text import make_enhancer

    llc_path = build_arm_llc(tmp_path_factory.mktemp("llc") / "arm_llc.pth")
    torch.manual_seed(0)
    return MethodContext(
        llc_checkpoint=llc_path, llc=load_llc(llc_path), clip_model=ClipModel(ClipSpec(weights="random")),
        renderer=render.StateRenderer(load_humanoid().mj_model(), render.CameraSpec()),
        enhancer=make_enhancer("offline"), reward_source="projection", projection=StateProjection(hidden=(32,)),
        max_epochs=2, num_envs=4,
        kinematic=KinematicSettings(keyframes=2, population=2, elites=1, iterations=1, stride=10))


@pytest.mark.slow
@pytest.mark.parametrize("key", list(METHODS))
def test_every_method_trains_and_is_measured(key, ctx, tmp_path):
    run = train_method(METHODS[key], "kick", ctx, tmp_path / key, seconds=0.4)
    assert run.trained_on == ("kick" if key == "ours_no_enhance" else ctx.enhancer.enhance("kick").text)
    if run.train is not None:
        assert run.train.epochs == 2 and run.train.checkpoint.is_file()
    result = rollout_method(run, ctx, seconds=0.4)
    row = measure(run, result, ctx.clip_model, clip_stride=6)
    assert row["method"] == key and -100 <= row["clip_s"] <= 100 and np.isfinite(row["foot_sliding_m_s"])


@pytest.mark.slow
def test_a_tables_latent_action_reaches_each_training_and_its_task_inputs(ctx, tmp_path):
    """``latent_action`` of the table context (the notebooks' parameter): each π_H trains and rolls out through it, and
    a finished training of the other latent action is never reused (it is one of the task's inputs)."""
    from dataclasses import replace

    from anyskill.eval.methods import MethodTask, task_inputs
    from anyskill.hlc.policy import load_hlc

    anchored = replace(ctx, latent_action="anchored")
    run = train_method(METHODS["ours_full"], "kick", anchored, tmp_path / "anchored", seconds=0.4)
    assert run.train is not None and load_hlc(run.train.checkpoint).latent_action == "anchored"
    result = rollout_method(run, anchored, seconds=0.4)
    assert np.allclose(np.linalg.norm(np.asarray(result.latents), axis=-1), 1.0, atol=1e-5)
    task = MethodTask("ours_full", "kick", tmp_path / "t")
    assert task_inputs(task, ctx)["latent_action"] == "free" and task_inputs(task, anchored)["latent_action"] == \
        "anchored"
