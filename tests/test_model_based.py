"""The model-based tracker's parts (issue 28): the transition buffer's windows, the world model's frame and
integration, the corrected rollout, the settings' checks, and a tiny training run that writes a tracker the PPO
route's loader and its resume take."""

from __future__ import annotations

import math

import pytest
import torch

from anyskill.config.tracking import ModelBasedConfig, TrackingConfig
from anyskill.humanoid import rotations as rot
from anyskill.llc.tracking.env import ReferenceFrames
from anyskill.llc.tracking.model_based import TransitionBuffer, _shifted, train_model_based_tracker
from anyskill.llc.tracking.tracker import evaluate_tracker, load_tracker
from anyskill.llc.tracking.world_model import BodyState, WorldModel, velocity_change
from anyskill.motion.library import MotionLibrary

NB, D, K = 15, 28, 2


def _state(n: int, gen: torch.Generator) -> BodyState:
    return BodyState(torch.randn(n, NB, 3, generator=gen), rot.quat_normalize(torch.randn(n, NB, 4, generator=gen)),
                     torch.randn(n, NB, 3, generator=gen), torch.randn(n, NB, 3, generator=gen))


def _refs(n: int) -> ReferenceFrames:
    q = rot.quat_identity((n, K))
    return ReferenceFrames(torch.zeros(n, K, 3), q, torch.zeros(n, K, D), torch.zeros(n, K, NB, 3),
                           rot.quat_identity((n, K, NB)))


def test_buffer_windows_stay_inside_one_episode_and_the_ring():
    gen = torch.Generator().manual_seed(0)
    n, steps = 3, 16
    buf = TransitionBuffer(steps, n, NB, D, K, torch.device("cpu"))
    assert buf.sample(4, 8, gen) is None  # nothing stored yet
    done_at = {(5, 0), (9, 1), (10, 1), (20, 2), (30, 0)}  # (logical step, world)
    states = {}
    for t in range(40):
        s = _state(n, gen)
        s.pos[:, 0, 0] = t  # the logical step, readable from the stored state
        states[t] = s
        buf.put_state(s, _refs(n))
        buf.put_step(torch.full((n, D), float(t)), torch.tensor([(t, w) in done_at for w in range(n)]))
    buf.put_state(_state(n, gen), _refs(n))
    for window in (1, 4, 8):
        slots, worlds = buf.sample(window, 512, gen)
        assert slots.shape == (512, window + 1) and worlds.shape == (512,)
        first = buf.pos[slots[:, 0], worlds, 0, 0].long()
        assert bool((first >= 40 - steps + 1).all())  # only steps still in the ring
        for j in range(window):
            t = buf.targets[slots[:, j], worlds, 0].long()
            assert torch.equal(t, first + j)  # consecutive logical steps
            ended = torch.tensor([(int(ti), int(w)) in done_at for ti, w in zip(t, worlds, strict=True)])
            assert not bool(ended.any()), "a window crossed an episode's end"
        assert set(worlds.tolist()) == {0, 1, 2}


def test_velocity_change_is_the_same_in_every_heading():
    gen = torch.Generator().manual_seed(1)
    a, b = _state(4, gen), _state(4, gen)
    yaw = rot.quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]).expand(4, 3), torch.full((4,), 0.7))
    y = yaw[:, None].expand(4, NB, 4)

    def turned(s: BodyState) -> BodyState:
        return BodyState(rot.quat_rotate(y, s.pos), rot.quat_mul(y, s.rot), rot.quat_rotate(y, s.vel),
                         rot.quat_rotate(y, s.ang))

    assert torch.allclose(velocity_change(a, b), velocity_change(turned(a), turned(b)), atol=1e-5)


def test_world_model_integrates_its_velocity_change_and_passes_gradients_to_the_targets():
    gen = torch.Generator().manual_seed(2)
    model = WorldModel(NB, D, dt=1 / 30, units=(32,))
    s = _state(5, gen)
    s.ang.zero_()
    for p in model.net.parameters():
        torch.nn.init.zeros_(p)  # predicted change = the running mean = 0
    nxt = model(s, torch.zeros(5, D))
    assert torch.allclose(nxt.vel, s.vel) and torch.allclose(nxt.pos, s.pos + s.vel / 30, atol=1e-6)
    assert torch.allclose(nxt.rot, s.rot, atol=1e-6)
    model = WorldModel(NB, D, dt=1 / 30, units=(32,))
    targets = torch.zeros(5, D, requires_grad=True)
    model(s, targets).pos.sum().backward()
    assert targets.grad is not None and bool(targets.grad.abs().sum() > 0)


def test_corrected_step_is_the_real_state_where_the_actions_agree():
    gen = torch.Generator().manual_seed(3)
    real, pred = _state(4, gen), _state(4, gen)
    same = _shifted(real, pred, pred)
    for a, b in zip((same.pos, same.rot, same.vel, same.ang), (real.pos, real.rot, real.vel, real.ang),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    base = _state(4, gen)
    moved = _shifted(real, pred, base)
    assert torch.allclose(moved.pos - real.pos, pred.pos - base.pos, atol=1e-6)
    # rotations: the predicted change of rotation is applied to the real one
    delta = rot.quat_angle_between(moved.rot, real.rot)
    assert torch.allclose(delta, rot.quat_angle_between(pred.rot, base.rot), atol=1e-4)


@pytest.mark.parametrize("bad", [{"policy_window": 0}, {"buffer_steps": 8, "policy_window": 8},
                                 {"policy_rollout": "imagined"}])
def test_settings_are_checked(bad):
    with pytest.raises(ValueError):
        ModelBasedConfig(**bad)


def test_tiny_run_writes_a_tracker_the_ppo_loader_takes_and_resumes(motion_lib, tmp_path):
    torch.set_num_threads(1)
    lib = MotionLibrary([motion_lib.clips[motion_lib.clip_names.index("wave_right_hand")]])
    track = TrackingConfig(num_envs=4, episode_length=30)
    cfg = ModelBasedConfig(total_samples=4 * 8 * 6, collect_steps=8, buffer_steps=32, warmup_samples=64,
                           model_window=4, policy_window=4, model_batch=16, policy_batch=8, model_units=(32,),
                           actor_units=(32,), critic_units=(32,))
    with pytest.raises(ValueError, match="future_frames"):
        train_model_based_tracker(lib, tmp_path, TrackingConfig(num_envs=4, future_frames=1), cfg, progress=False)
    run = train_model_based_tracker(lib, tmp_path, track, cfg, progress=False)
    assert run.samples == 192 and len(run.curve) == 6
    assert all(math.isfinite(r["model_loss"]) for r in run.curve)
    assert math.isnan(run.curve[0]["policy_loss"]) and math.isfinite(run.curve[-1]["policy_loss"])  # warm-up first
    tracker, settings = load_tracker(run.checkpoint)
    assert settings.num_envs == 4
    assert evaluate_tracker(tracker, lib, track)["per_clip"][0]["clip"] == "wave_right_hand"
    more = ModelBasedConfig(**{**cfg.__dict__, "total_samples": 256, "policy_rollout": "model"})  # the other rollout
    again = train_model_based_tracker(lib, tmp_path, track, more, resume=run.checkpoint, progress=False)
    assert again.samples == 256 and len(again.curve) == 8
    assert (tmp_path / "tracker_curve.csv").is_file()


def test_route_option_trains_the_model_based_tracker_then_distils_it(tmp_path):
    import json

    from anyskill.cli import main
    from anyskill.llc.controller import load_llc

    out = tmp_path / "run"
    assert main(["train-llc", "--scale", "smoke", "--tracker", "model_based", "--out", str(out), "--no-progress"]) == 0
    info = json.loads((out / "train_info.json").read_text())
    assert info["tracker_method"] == "model_based" and info["tracker"]["samples"] >= 128
    assert torch.load(out / "tracker.pth", map_location="cpu", weights_only=False)["method"] == "model_based"
    assert load_llc(out / "llc.pth").latent_dim == 64
    with pytest.raises(ValueError, match="model_based tracker, not ppo"):
        main(["train-llc", "--scale", "smoke", "--out", str(out), "--no-progress"])
