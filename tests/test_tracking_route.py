"""The tracking route: reference timelines, residual replay, the distilled student's interface, checkpoints, CLI."""

from __future__ import annotations

import torch

from anyskill.config.tracking import TrackingConfig
from anyskill.llc.tracking.env import TrackingEnv
from anyskill.llc.tracking.student import StudentController, StudentNetworks
from anyskill.motion.library import MotionLibrary


def _lib(full: MotionLibrary, *names: str) -> MotionLibrary:
    return MotionLibrary([full.clips[full.clip_names.index(n)] for n in names])


def _env(lib: MotionLibrary, **kw) -> TrackingEnv:
    cfg = TrackingConfig(**{"num_envs": lib.num_clips, "episode_length": 10_000, "failure_weighting": 0.0, **kw})
    env = TrackingEnv(cfg, lib)
    env.reset()
    return env


def _start(env: TrackingEnv, standing: bool, k0: int = 0) -> None:
    ids = torch.arange(env.num_envs)
    env.reset_envs(ids, clips=ids % env.lib.num_clips, standing=torch.full((env.num_envs,), standing),
                   k0=torch.full((env.num_envs,), k0))
    env.step_offset.zero_()
    env._ref = env.reference(list(range(1, env.cfg.future_frames + 1)))


def test_zero_residual_replays_a_gesture_through_the_pd_loop(motion_lib):
    """A zero action is the clip's own joint angles as PD targets: gestures are tracked to a few cm for 2 s."""
    lib = _lib(motion_lib, "idle_stand", "wave_right_hand", "arms_crossed")
    env = _env(lib)
    _start(env, standing=False)
    errs = []
    for _ in range(60):
        _, reward, done, info = env.step(torch.zeros(env.num_envs, env.num_actions))
        assert not done.any()
        errs.append(info["local_error_m"])
        assert ((reward > 0) & (reward <= 1.0 + 1e-6)).all()
    assert torch.stack(errs).mean() < 0.04
    # a large residual moves the targets away from the reference: the error grows
    _start(env, standing=False)
    for _ in range(15):
        _, _, _, info = env.step(torch.ones(env.num_envs, env.num_actions))
    assert info["local_error_m"].mean() > 2 * torch.stack(errs).mean()


def test_standing_start_blends_into_the_clip_frame(motion_lib):
    lib = _lib(motion_lib, "bow")
    env = _env(lib, blend_steps=10)
    _start(env, standing=True, k0=12)
    first = env.reference([0])
    assert torch.allclose(first.dof_pos[:, 0], env.env.backend.dof_pos(), atol=1e-5)  # from the character's pose
    target_row = env.grid.clip_start[0] + 12
    mid = env.reference([5])
    end = env.reference([10])
    assert torch.allclose(end.dof_pos[0, 0], env.grid.dof_pos[target_row], atol=1e-5)
    assert 0.0 < (mid.dof_pos[0, 0] - first.dof_pos[0, 0]).norm() < (end.dof_pos[0, 0] - first.dof_pos[0, 0]).norm()
    later = env.reference([13])
    assert torch.allclose(later.dof_pos[0, 0], env.grid.dof_pos[target_row + 3], atol=1e-5)  # then the clip plays
    # the clip is anchored at the character: its root starts above the character's ground position
    assert torch.allclose(end.root_pos[0, 0, :2], env.env.backend.body_pos()[0, 0, :2], atol=1e-4)


def test_reference_loops_back_to_the_first_frame(motion_lib):
    lib = _lib(motion_lib, "punch")
    env = _env(lib, blend_steps=6)
    _start(env, standing=False)
    last = int(env.grid.clip_len[0]) - 1
    for _ in range(last):
        env.step(torch.zeros(1, env.num_actions))
    assert env.blend[0] == 6 and env.k_start[0] == 0  # at the clip's last frame a blend into frame 0 began
    ref = env.reference([6])
    assert torch.allclose(ref.dof_pos[0, 0], env.grid.dof_pos[env.grid.clip_start[0]], atol=1e-5)


def test_student_counts_steps_since_its_latent_changed():
    cfg = {"latent_dim": 8, "enc_steps": 6, "enc_stride": 2, "enc_units": [16], "policy_units": [16], "obs_dim": 5,
           "actions_num": 3, "frame_dim": 4, "motion_dt": 1 / 30, "timing_horizon": 6}
    ctrl = StudentController({"student": cfg})
    z = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    assert ctrl.timing(z).tolist() == [0, 0]
    assert ctrl.timing(z).tolist() == [1, 1]
    z2 = z.clone()
    z2[1] = -z[1]
    assert ctrl.timing(z2).tolist() == [2, 0]
    ctrl.reset_timing()
    assert ctrl.timing(z2).tolist() == [0, 0]
    # the timing input saturates after the window and changes the action before
    net = StudentNetworks(cfg)
    obs = torch.randn(1, 5)
    a = [net.action(obs, z[:1], torch.tensor([t])) for t in (0, 3, 6, 60)]
    assert not torch.allclose(a[0], a[1]) and torch.allclose(a[2], a[3])
    w = net.encode(torch.randn(3, 6, 4))
    assert w.shape == (3, 8) and torch.allclose(w.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_smoke_route_trains_resumes_and_evaluates_through_the_cli(tmp_path, capsys):
    import json

    from anyskill.cli import main
    from anyskill.llc.controller import load_llc

    out = tmp_path / "run"
    assert main(["train-llc", "--scale", "smoke", "--out", str(out), "--no-progress", "--distill-set",
                 "random_latent_prob=0.3", "random_hold_prob=0.5"]) == 0
    info = json.loads((out / "train_info.json").read_text())
    assert info["route"] == "tracking" and info["distill"]["samples"] >= 128
    assert (info["distill"]["random_latent_prob"], info["distill"]["random_hold_prob"]) == (0.3, 0.5)
    llc = load_llc(out / "llc.pth")
    assert isinstance(llc, StudentController) and (llc.latent_dim, llc.obs_dim, llc.action_dim) == (64, 223, 28)
    # a second call resumes: both stages are complete, nothing is trained again
    before = (out / "llc.pth").stat().st_mtime_ns
    assert main(["train-llc", "--scale", "smoke", "--out", str(out), "--no-progress",
                 "--distill-samples", "128"]) == 0
    assert json.loads((out / "train_info.json").read_text())["distill"]["samples"] == info["distill"]["samples"]
    assert before <= (out / "llc.pth").stat().st_mtime_ns
    ev = tmp_path / "eval"
    assert main(["eval-llc", str(out / "llc.pth"), "--no-baseline", "--tracker", str(out / "tracker.pth"),
                 "--skill-seconds", "0.5", "--idle-seconds", "0.5", "--seconds", "0.5", "--latent-envs", "8",
                 "--out", str(ev)]) == 0
    summary = json.loads((ev / "llc_interface.json").read_text())
    assert set(summary) >= {"sliding", "random_latents", "tracker", "provenance"}
    assert summary["sliding"]["clips"] == 18 and 0.0 <= summary["random_latents"]["held_survival"] <= 1.0
    assert "sliding latents" in capsys.readouterr().out
    # a loaded student goes through the per-clip evaluation as a CALM controller does, beside its untrained twin
    from anyskill.llc.evaluate import evaluate_llc

    df = evaluate_llc(llc, seconds=0.3, min_seconds=0.3, baseline=True)
    assert set(df["controller"]) == {"trained", "untrained"} and len(df) == 36
    assert df["body_err_local_m"].gt(0).all() and df["disc_logit"].isna().all()


def test_route_rejects_calm_only_options(tmp_path):
    import pytest

    from anyskill.cli import main

    with pytest.raises(ValueError, match="--route calm"):
        main(["train-llc", "--scale", "smoke", "--out", str(tmp_path), "--epochs", "3"])
    # student settings: known DistillConfig fields of their own type only, said before anything is trained
    for bad, says in (("bogus=1", "KEY one of"), ("updates=0.5", "updates must be a int"),
                      ("switch_clips=squat", "KEY one of"), ("random_hold_prob", "KEY one of")):
        with pytest.raises(ValueError, match=says):
            main(["train-llc", "--scale", "smoke", "--out", str(tmp_path / "x"), "--distill-set", bad])
    assert not (tmp_path / "x").exists()


def test_switch_clips_choose_the_windows_of_switched_and_random_latents(motion_lib):
    """DistillConfig.switch_clips: the grid rows a switch may go to are the named clips' windows, all of them by
    default; an unknown name is an error, not an empty repertoire."""
    import pytest

    from anyskill.config.tracking import DistillConfig
    from anyskill.llc.tracking.distill import switch_rows
    from anyskill.motion.frame_grid import AmpFrameGrid

    lib = _lib(motion_lib, "idle_stand", "squat", "amp_humanoid_backflip")
    grid = AmpFrameGrid.from_library(lib, 1.0 / 30.0)
    assert switch_rows(grid, lib.clip_names, DistillConfig()).all()
    rows = switch_rows(grid, lib.clip_names, DistillConfig(switch_clips=("squat", "amp_humanoid_backflip")))
    assert torch.equal(rows, grid.clip_of >= 1) and rows.sum() == grid.clip_len[1:].sum()
    with pytest.raises(ValueError, match="not in the motion library"):
        switch_rows(grid, lib.clip_names, DistillConfig(switch_clips=("moonwalk",)))


def test_tracked_clips_are_those_the_tracker_finishes(motion_lib):
    """``--switch-clips tracked``: a zero-residual tracker (the PD replay) finishes the crossed arms and the wave from
    their first frame and from standing, and falls in the backflip, which is left out."""
    from anyskill.llc.tracking.route import tracked_clips
    from anyskill.llc.tracking.tracker import Tracker

    lib = _lib(motion_lib, "arms_crossed", "amp_humanoid_backflip", "wave_right_hand")
    track = TrackingConfig(num_envs=3)
    env = TrackingEnv(track, lib)
    replay = Tracker(env.num_obs, env.num_actions, (16,), (16,)).eval()
    torch.nn.init.zeros_(replay.actor[-1].weight)
    torch.nn.init.zeros_(replay.actor[-1].bias)
    assert tracked_clips(replay, lib, track) == ["arms_crossed", "wave_right_hand"]


def test_held_random_latents_switch_only_when_an_episode_ends(motion_lib, tmp_path):
    """DistillConfig.random_hold_prob: a random episode that holds its latent switches (to a new random latent) only
    when it ends; one that does not switches at the high-level cadence (every ``llc_steps``)."""
    from anyskill.config.tracking import DistillConfig
    from anyskill.llc.tracking.distill import distill
    from anyskill.llc.tracking.tracker import Tracker

    lib = _lib(motion_lib, "idle_stand", "wave_right_hand")
    track = TrackingConfig(num_envs=8, episode_length=10_000)
    env = TrackingEnv(track, lib)
    teacher = Tracker(env.num_obs, env.num_actions, (16,), (16,)).eval()
    rates = {}
    for hold in (1.0, 0.0):
        cfg = DistillConfig(num_envs=8, horizon=10, total_samples=8 * 10 * 4, sliding_prob=0.0, switch_prob=0.0,
                            random_latent_prob=1.0, random_hold_prob=hold, cadence_switch_prob=1.0, replay_size=512,
                            updates=1, minibatch=32, reg_batch=8, enc_units=(32,), policy_units=(32,),
                            checkpoint_every_s=1e9)
        curve = distill(lib, teacher, track, tmp_path / str(hold), cfg, progress=False).curve
        rates[hold] = [(r["switches_per_step"], r["terminations_per_step"]) for r in curve[1:]]
    assert all(abs(sw - term) < 1e-9 for sw, term in rates[1.0])
    assert all(sw >= 0.19 for sw, _ in rates[0.0])
