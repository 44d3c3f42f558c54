"""Learning signals of the tracking route, for 5 seeds, single-threaded: the distilled student's action error falls;
the smoke route runs end to end and its checkpoint loads as a controller with the latent interface."""

from __future__ import annotations

import pytest
import torch

from anyskill.llc.distill import DistillConfig, distill
from anyskill.llc.tracker import Tracker
from anyskill.llc.tracking import TrackingConfig, TrackingEnv
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
