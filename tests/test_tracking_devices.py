"""The tracking route on any device: the GPU code path (``dense`` masks, MuJoCo Warp, no host synchronisation) gives
the trajectories of the CPU path, runs on Warp's CPU device, and the one-shot GPU training rehearses on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from anyskill.config.tracking import TrackingConfig
from anyskill.llc.tracking.env import TrackingEnv
from anyskill.llc.tracking.oneshot import MAX_FILE_BYTES, PART_BYTES, join_file, split_file


def _pair(lib, backend: str = "mujoco", n: int = 16, **kw) -> tuple[TrackingEnv, TrackingEnv]:
    cfg = TrackingConfig(num_envs=n, episode_length=30, blend_steps=5, seed=3, backend=backend, **kw)
    return TrackingEnv(cfg, lib), TrackingEnv(TrackingConfig(**{**cfg.__dict__, "dense": True}), lib)


def _run_both(a: TrackingEnv, b: TrackingEnv, steps: int) -> tuple[float, int, int]:
    """Largest difference of obs / reward / done over ``steps`` random residual steps; episodes ended; loops."""
    assert not a.dense and b.dense
    worst = float((a.reset() - b.reset()).abs().max())
    gen = torch.Generator().manual_seed(1)
    ended = loops = 0
    for _ in range(steps):
        act = torch.rand(a.num_envs, a.num_actions, generator=gen) * 2 - 1
        before = a.k_start.clone()
        ra, rb = a.step(act), b.step(act)
        for x, y in zip(ra[:3], rb[:3], strict=True):
            worst = max(worst, float((x.float() - y.float()).abs().max()))
        ended += int(ra[2].sum())
        loops += int(((a.k_start == 0) & (before != 0) & ~ra[2]).sum())
    return worst, ended, loops


def test_dense_masks_give_the_indexed_trajectories(motion_lib):
    """The GPU mode (every env computed, masks select) and the CPU mode (blending / resetting envs by index) draw the
    same random numbers and reach bit-identical observations, rewards and dones, through resets and loops."""
    a, b = _pair(motion_lib)
    worst, ended, loops = _run_both(a, b, 90)
    assert ended > 10, "the comparison must cover episode resets"
    assert loops > 0, "the comparison must cover clip loops (blends back into frame 0)"
    assert worst == 0.0


def test_failure_rates_move_towards_each_clips_outcomes(motion_lib):
    """Each ended episode moves its clip's rate 2 % towards 1 (terminated) or 0; clips without ended episodes keep
    theirs; two episodes of one clip in one step count twice."""
    env = TrackingEnv(TrackingConfig(num_envs=4, seed=0), motion_lib)
    env.reset()
    env.clip = torch.tensor([0, 0, 1, 2])
    env._count_failures(torch.tensor([True, True, True, False]), torch.tensor([True, True, False, False]))
    torch.testing.assert_close(env.fail_rate[:3], torch.tensor([0.5 * 0.98**2 + (1 - 0.98**2), 0.49, 0.5]))


def test_warp_masked_state_equals_indexed_state():
    """``set_state_masked`` (no host sync) writes what ``set_state`` writes for the masked worlds and leaves the others
    bit for bit."""
    from anyskill.sim.warp_backend import WarpBackend

    a, b = WarpBackend(4, device="cpu"), WarpBackend(4, device="cpu")
    for w in (a, b):
        w.set_pd_targets(torch.full((4, 28), 0.1))
        w.step(4)
    gen = torch.Generator().manual_seed(0)
    rot = torch.nn.functional.normalize(torch.randn(4, 4, generator=gen), dim=-1)
    state = (torch.randn(4, 3, generator=gen) * 0.1 + torch.tensor([0.0, 0.0, 1.0]), rot,
             torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen),
             torch.randn(4, 28, generator=gen) * 0.2, torch.randn(4, 28, generator=gen))
    mask = torch.tensor([True, False, True, False])
    a.set_state(mask.nonzero().squeeze(-1), *(x[mask] for x in state))
    b.set_state_masked(mask, *state)
    for reader in ("qpos", "qvel", "body_pos", "body_rot", "body_vel", "body_ang_vel", "body_contact_force"):
        torch.testing.assert_close(getattr(b, reader)(), getattr(a, reader)(), atol=1e-6, rtol=0, msg=reader)


def test_tracking_env_on_warp_dense_equals_indexed(motion_lib):
    """The GPU code path on MuJoCo Warp (here Warp's CPU device) follows the indexed path step for step."""
    a, b = _pair(motion_lib, backend="warp", n=6)
    assert type(a.backend).__name__ == "WarpBackend"
    worst, ended, _ = _run_both(a, b, 40)
    assert ended > 0
    assert worst < 1e-4


def test_split_and_join_files_round_trip(tmp_path):
    big = tmp_path / "big.pth"
    big.write_bytes(bytes(range(256)) * ((MAX_FILE_BYTES + 3 * 2**20) // 256))
    out = tmp_path / "out"
    out.mkdir()
    parts = split_file(big, out)
    assert [p.name for p in parts] == ["big.pth.part00", "big.pth.part01"]
    assert all(p.stat().st_size <= PART_BYTES for p in parts)
    assert join_file(out, "big.pth", tmp_path / "again.pth")
    assert (tmp_path / "again.pth").read_bytes() == big.read_bytes()
    assert not join_file(out, "missing.pth", tmp_path / "x")


@pytest.mark.slow
def test_one_shot_gpu_training_dry_run_and_resume(tmp_path):
    """``scripts/gpu_train_llc.sh --dry-run`` in-process: Warp's CPU device, the dense path, smoke sizes; ≤ 8 returned
    files of ≤ 16 MiB, a loadable controller, throughput beside the env alone, and a second run resumed from the
    first one's returned files continues its sample counts (its switched and random latents on named clips)."""
    from anyskill.llc import load_llc
    from anyskill.llc.tracking.oneshot import run

    first = run(tmp_path / "a", budget_s=5, dry_run=True, eval_timeout_s=240, work=tmp_path / "wa")
    files = sorted((tmp_path / "a").iterdir())
    assert 4 <= len(files) <= 8 and all(f.stat().st_size <= MAX_FILE_BYTES for f in files)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["eval"]["status"] == "ok", summary["eval"]["output_tail"]
    assert summary["tracker"]["samples_per_s"] > 0 and summary["env_alone"]["env_control_steps_per_s"] > 0
    assert summary["tracker"]["over_env_alone"] is not None
    load_llc(tmp_path / "a" / "llc.pth")
    second = run(tmp_path / "b", budget_s=5, resume=tmp_path / "a", dry_run=True, eval_timeout_s=240,
                 work=tmp_path / "wb", switch_clips=["squat", "bow"])
    assert second["resumed_from"] == {"tracker.pth": True, "llc.pth": True, "train_info.json": True}
    student = torch.load(tmp_path / "b" / "llc.pth", map_location="cpu", weights_only=False)
    assert list(student["distill"]["switch_clips"]) == ["squat", "bow"]  # the robust student's switches, named
    assert second["tracker"]["samples"] > first["tracker"]["samples"]
    assert second["distill"]["samples"] > first["distill"]["samples"]
    assert Path(tmp_path / "b" / "llc.pth").is_file()

    # the returned files recorded as a repository would commit them (no shipped controller there to compare with)
    from anyskill.viz.gpu_training import record_gpu_training

    repo = tmp_path / "repo"
    rec = record_gpu_training([tmp_path / "a", tmp_path / "b"], tmp_path / "wb" / "eval", "llc_test", root=repo)
    assert rec["tracker_samples"] == second["tracker"]["samples"] and not rec["shipped_as_default"]
    for rel in ("anyskill/checkpoints/llc_test.pth", "anyskill/checkpoints/llc_test_tracker.pth",
                "anyskill/checkpoints/llc_test.md", "results/llc_test_training.json",
                "figures/llc_test_route_curves.png"):
        assert (repo / rel).is_file(), rel
    assert "optimizer" not in torch.load(repo / "anyskill/checkpoints/llc_test.pth", weights_only=False)
    load_llc(repo / "anyskill/checkpoints/llc_test.pth")
