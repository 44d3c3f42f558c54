"""LLC evaluation: reference starts, rollouts, per-clip metrics, the CLI table and plot."""

import math

import pytest
import torch
import yaml

from anyskill.cli import main as cli_main
from anyskill.data import MOTIONS_DIR
from anyskill.humanoid import rotations as rot
from anyskill.llc.evaluate import (
    _masked_mean,
    evaluate_llc,
    heading_local,
    rollout_llc,
    summarize,
    untrained_llc,
)
from anyskill.provenance import read_csv

CLIPS = ("amp_humanoid_run", "authored_wave_right_hand")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("motions") / "motions.yaml"
    entries = [{"file": str(MOTIONS_DIR / f"{name}.npz"), "weight": 1.0} for name in CLIPS]
    path.write_text(yaml.safe_dump({"motions": entries}))
    return path


@pytest.fixture(scope="module")
def lib(manifest):
    from anyskill.llc.motions import load_motions

    torch.set_num_threads(1)  # small tensors: 2 threads on 2 shared cores were measured many times slower
    return load_motions(manifest)[0]


def test_heading_local_ignores_world_yaw_and_translation():
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(5, 15, 3, generator=g)
    root_rot = rot.quat_normalize(torch.randn(5, 4, generator=g))
    yaw = rot.quat_from_axis_angle(torch.tensor([0.0, 0.0, 1.0]).expand(5, 3), torch.rand(5, generator=g) * 6.0)
    moved = rot.quat_rotate(yaw[:, None].expand(5, 15, 4), pos) + torch.tensor([3.0, -2.0, 0.5])
    assert torch.allclose(heading_local(moved, rot.quat_mul(yaw, root_rot)), heading_local(pos, root_rot), atol=1e-5)
    assert torch.allclose(heading_local(pos, root_rot)[:, 0], torch.zeros(5, 3))


def test_masked_mean_is_nan_without_entries():
    x = torch.tensor([[1.0, 5.0], [3.0, 7.0]])
    m = torch.tensor([[True, False], [True, False]])
    out = _masked_mean(x, m)
    assert out[0].item() == 2.0 and math.isnan(out[1].item())


def test_reference_start_and_rollout(lib):
    from anyskill.sim.env import EnvConfig, HumanoidEnv

    env = HumanoidEnv(EnvConfig(num_envs=2, state_init="start", fall_init_prob=0.0, recovery_episode_prob=0.0,
                                episode_length=None), motion_lib=lib)
    ids, t0 = torch.arange(2), torch.tensor([0.0, 0.5])
    env.start_from_reference(torch.arange(2), ids, t0)
    assert torch.allclose(env.backend.body_pos(), lib.state_at(ids, t0).body_pos, atol=1e-4)
    assert torch.allclose(env.amp_obs_history, lib.amp_obs_window(ids, t0, 10, env.dt), atol=1e-5)
    llc = untrained_llc("smoke", seed=0)
    r = rollout_llc(llc, env, llc.encode(lib.amp_obs_window(ids, t0, 60, env.dt)), steps=40)
    assert r.body_pos.shape == (40, 2, 15, 3) and r.disc_logit.shape == (40, 2) and r.amp_obs.shape == (40, 2, 1250)
    # alive is monotone, and survival counts the steps up to the first episode end
    assert torch.all(r.alive[1:] <= r.alive[:-1])
    assert torch.equal(r.survival_steps.clamp_max(40), (r.alive.sum(0) + (~r.alive[-1]).long()).clamp_max(40))
    assert r.fallen.shape == (40, 2) and not (r.fallen & r.alive).any()  # a fall ends the episode here


def test_evaluate_llc_rows_and_baseline(lib, tmp_path):
    llc = untrained_llc("smoke", seed=3)
    df = evaluate_llc(llc, motion_lib=lib, seconds=3.0, baseline=True)
    assert list(df["controller"]) == ["trained", "trained", "untrained", "untrained"]
    assert list(df["clip"][:2]) == ["amp_humanoid_run", "wave_right_hand"]
    durations = lib.durations.tolist()
    expected = [round(min(3.0, max(d, 2.0)) * 30) / 30 for d in durations]
    assert df["horizon_s"][:2].tolist() == pytest.approx(expected, abs=1e-3)
    assert (df["survival_s"] <= df["horizon_s"] + 1e-6).all() and (df["survival_s"] > 0).all()
    assert (df[["body_err_local_m", "body_err_global_m"]] > 0).all().all()
    assert (df["demo_style_reward"] > 0).all()
    # deterministic: evaluating the same controller again gives the same table
    again = evaluate_llc(llc, motion_lib=lib, seconds=3.0)
    assert again.drop(columns="controller").equals(df[:2].drop(columns="controller"))
    summary = summarize(df)
    assert list(summary["controller"]) == ["trained", "untrained"] and "fell_fraction" in summary
    with pytest.raises(ValueError, match="seconds"):
        evaluate_llc(llc, motion_lib=lib, seconds=0.0)


def test_eval_llc_cli_writes_tables_and_plots(manifest, tmp_path, capsys):
    assert cli_main(["eval-llc", "untrained", "--motions", str(manifest), "--out", str(tmp_path),
                     "--seconds", "2", "--skill-seconds", "2", "--idle-seconds", "3"]) == 0
    df, meta = read_csv(tmp_path / "llc_eval.csv")
    assert len(df) == len(CLIPS) and set(df["controller"]) == {"untrained"}
    assert "commit" in meta and "untrained" in meta["config"]
    assert (tmp_path / "llc_eval.png").stat().st_size > 10_000
    skills, _ = read_csv(tmp_path / "llc_skills.csv")
    assert list(skills["clip"]) == ["amp_humanoid_run", "wave_right_hand"] and skills["survived"].all()
    assert (tmp_path / "llc_skills.png").stat().st_size > 10_000 and (tmp_path / "llc_skills.json").is_file()
    assert "held-out skills (2 latents, 2 s from standing)" in capsys.readouterr().out
