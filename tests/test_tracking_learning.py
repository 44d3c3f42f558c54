"""Learning signals of the tracking route, for 5 seeds, single-threaded: the tracker learns to finish a clip that the
plain PD replay falls on, with a smaller tracking error, by PPO and through a learnt world model; the distilled
student's action error falls, on random and switched latents too."""

from __future__ import annotations

import math

import pytest
import torch

from anyskill.config.tracking import DistillConfig, TrackerPPOConfig, TrackingConfig
from anyskill.llc.tracking.distill import distill
from anyskill.llc.tracking.env import TrackingEnv
from anyskill.llc.tracking.tracker import Tracker, evaluate_tracker, load_tracker, train_tracker
from anyskill.motion.library import MotionLibrary


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5))
def test_student_action_error_falls_under_dagger(motion_lib, tmp_path, seed):
    """DAgger on two clips with a zero-residual teacher (it replays the reference): the student must learn to map
    (state, latent, timing) to the reference's joint angles; its error on its own rollouts must fall by 3x."""
    torch.set_num_threads(1)
    lib = MotionLibrary([motion_lib.clips[motion_lib.clip_names.index(n)] for n in ("wave_right_hand", "squat")])
    track = TrackingConfig(num_envs=16, episode_length=90, seed=seed)
    env = TrackingEnv(track, lib)
    torch.manual_seed(seed)
    teacher = Tracker(env.num_obs, env.num_actions, (32,), (32,)).eval()
    cfg = DistillConfig(num_envs=16, horizon=16, total_samples=16 * 16 * 40, teacher_steps_frac=0.2,
                        replay_size=20_000, updates=8, minibatch=256, reg_batch=32, enc_units=(64,),
                        policy_units=(128, 128), lr=1e-3)
    run = distill(lib, teacher, track, tmp_path, cfg, seed=seed, progress=False)
    first = run.curve[0]["rollout_action_mse"]
    last = sum(r["rollout_action_mse"] for r in run.curve[-5:]) / 5
    assert last < first / 3, (first, last)
    assert (tmp_path / "llc.pth").is_file() and (tmp_path / "distill_curve.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_robust_student_learns_random_and_switched_latents(motion_lib, tmp_path, seed):
    """The robust student (issue 27): DAgger on three gestures with a zero-residual teacher, most episodes switching
    at the high-level cadence or later to random windows or to random unit latents (labelled with the window whose
    latent is nearest; 31 k samples, ~40 s on one core). The student's action error on random latents, which it first
    has no motion for, must fall by 2x and end within 3x of its error on the clips' own held latents.

    Seeds 0-4 pass (measured 2026-12-05 on the 2-core VM: the error falls 2.9-4.7x and ends at 0.73-1.9x the held
    latents'; again 2026-12-06 once switching envs start on a switch: 2.9-3.9x, 0.69-1.64x); the suite runs 0-2 to
    keep CI short. At half the samples the fall was 2.4-6.1x."""
    torch.set_num_threads(1)
    lib = MotionLibrary([motion_lib.clips[motion_lib.clip_names.index(n)]
                         for n in ("wave_right_hand", "squat", "raise_both_arms")])
    track = TrackingConfig(num_envs=16, episode_length=90, seed=seed)
    env = TrackingEnv(track, lib)
    torch.manual_seed(seed)
    teacher = Tracker(env.num_obs, env.num_actions, (32,), (32,)).eval()
    torch.nn.init.zeros_(teacher.actor[-1].weight)
    torch.nn.init.zeros_(teacher.actor[-1].bias)
    cfg = DistillConfig(num_envs=16, horizon=16, total_samples=16 * 16 * 120, teacher_steps_frac=0.2,
                        sliding_prob=0.0, switch_prob=0.3, random_latent_prob=0.4, cadence_switch_prob=0.5,
                        replay_size=20_000, updates=8, minibatch=256, reg_batch=32, enc_units=(64,),
                        policy_units=(128, 128), lr=1e-3)
    run = distill(lib, teacher, track, tmp_path, cfg, seed=seed, progress=False)
    ran = [r for r in run.curve if not math.isnan(r["action_mse_random"])]
    first = sum(r["action_mse_random"] for r in ran[:3]) / 3
    last = sum(r["action_mse_random"] for r in ran[-10:]) / 10
    held = [r["action_mse_held"] for r in run.curve[-10:] if not math.isnan(r["action_mse_held"])]
    assert last < first / 2, (first, last)
    assert last < 3 * sum(held) / len(held), (last, held)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_tracker_learns_to_finish_a_kick_that_pd_replay_falls_on(motion_lib, tmp_path, seed):
    """PPO on the kick clip (64 humanoids, 400 k samples, KL target 0.02, ~2 min on one core): deterministic, from
    the clip's first frame and from standing, the zero-residual tracker (the clip's joint angles as PD targets) falls
    and errs by ~0.09-0.11 m; the trained one must finish the clip and cut the error by 40 %.

    Seeds: 0-4 pass at 400 k samples (measured 2026-12-06 on the 2-core VM with torch 2.14.1, mujoco 4.0.1, numpy
    2.4.6; seed 0 also at 500 k); the suite runs 0-2 to keep CI short. At 300 k all five passed on 2026-12-04's
    packages, but with these seed 0 fell at 2.6 s: the outcome depends on the library versions, so the budget keeps
    a margin. With the default KL target 0.05 PPO learns the kick and then oscillates: 200 k samples failed seeds 0,
    1 and 4 after this release's reset draws changed (the env now draws every step), 300 k failed seed 2; KL 0.02
    passes all five."""
    torch.set_num_threads(1)
    lib = MotionLibrary([motion_lib.clips[motion_lib.clip_names.index("kick")]])
    track = TrackingConfig(num_envs=64, episode_length=120, seed=seed)
    ppo = TrackerPPOConfig(horizon=32, epochs=4, minibatch=512, actor_units=(256, 128), critic_units=(256, 128),
                           total_samples=400_000, kl_target=0.02)
    run = train_tracker(lib, tmp_path, track, ppo, seed=seed, progress=False)
    trained, _ = load_tracker(run.checkpoint)
    replay = Tracker(trained.obs_dim, trained.act_dim, trained.actor_units, trained.critic_units).eval()
    torch.nn.init.zeros_(replay.actor[-1].weight)
    torch.nn.init.zeros_(replay.actor[-1].bias)
    for standing in (False, True):
        before = evaluate_tracker(replay, lib, track, standing=standing)
        after = evaluate_tracker(trained, lib, track, standing=standing)
        assert before["finished"] == 0.0
        assert after["finished"] == 1.0, (standing, after)
        assert after["local_error_m"] < 0.6 * before["local_error_m"], (standing, before, after)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_model_based_tracker_learns_a_squat_that_pd_replay_falls_on(motion_lib, tmp_path, seed):
    """The model-based tracker (issue 28) on the squat clip (64 humanoids, 12 k real samples of which the first 8 k
    train only the world model, ~1 min on one core): the model's one-step error on transitions it has not yet learnt
    from must fall by 40 % (measured 0.51 -> 0.23), and the tracker, deterministic, from the clip's first frame and
    from standing, must finish the squat that the zero-residual replay falls on, with 25 % less root-relative body
    error (measured 35-56 % less).

    Seeds: 0-4 pass (measured 2026-12-05 on the 2-core VM); the suite runs 0-1 to keep CI short. Longer runs are not
    stable: at 40 k samples 4 of 5 seeds had lost the squat again (docs/model_based_tracker.md)."""
    from anyskill.config.tracking import ModelBasedConfig
    from anyskill.llc.tracking.model_based import train_model_based_tracker

    torch.set_num_threads(1)
    lib = MotionLibrary([motion_lib.clips[motion_lib.clip_names.index("squat")]])
    track = TrackingConfig(num_envs=64, episode_length=120, seed=seed)
    cfg = ModelBasedConfig(total_samples=12_288, warmup_samples=8192, actor_units=(128, 128), critic_units=(32,),
                           model_units=(128, 128), model_batch=256, policy_batch=64)
    run = train_model_based_tracker(lib, tmp_path, track, cfg, seed=seed, progress=False)
    first = sum(r["model_error"] for r in run.curve[:3]) / 3
    last = sum(r["model_error"] for r in run.curve[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    trained, _ = load_tracker(run.checkpoint)
    replay = Tracker(trained.obs_dim, trained.act_dim, trained.actor_units, trained.critic_units).eval()
    torch.nn.init.zeros_(replay.actor[-1].weight)
    torch.nn.init.zeros_(replay.actor[-1].bias)
    for standing in (False, True):
        before = evaluate_tracker(replay, lib, track, standing=standing)
        after = evaluate_tracker(trained, lib, track, standing=standing)
        assert before["finished"] == 0.0
        assert after["finished"] == 1.0, (standing, after)
        assert after["local_error_m"] < 0.75 * before["local_error_m"], (standing, before, after)
