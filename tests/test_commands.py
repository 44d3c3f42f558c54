"""The commands that replaced scripts/ (issue 25): each has ``--help`` and runs end to end at a tiny size."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from anyskill.cli import main

NEW_COMMANDS = {"ship-llc": "--calm", "compare-llc-pose": "--controller", "notebook-times": "--results",
                "calibration-times": "cache_dirs", "domain-e2e": "--random-floor", "gpu-check": "--train-seconds",
                "gpu-ingest": "--allow-dry-run", "et-study": "--variants"}


@pytest.mark.parametrize("command", sorted(NEW_COMMANDS))
def test_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0 and NEW_COMMANDS[command] in capsys.readouterr().out


@pytest.fixture(scope="module")
def two_clips(tmp_path_factory) -> Path:
    from anyskill.data import MANIFEST

    entries = [{**e, "file": str(MANIFEST.parent / e["file"])} for e in yaml.safe_load(MANIFEST.read_text())["motions"]
               if Path(e["file"]).stem in ("amp_humanoid_walk", "authored_idle_stand")]
    path = tmp_path_factory.mktemp("motions") / "motions.yaml"
    path.write_text(yaml.safe_dump({"motions": entries}))
    return path


def test_ship_llc_writes_the_controller_its_results_and_card(two_clips, tmp_path, capsys):
    """A smoke tracking-route run shipped into a scratch root: stripped checkpoints that load, the evaluation
    files, figures and the model card with the CALM column."""
    from anyskill.llc.controller import load_llc
    from anyskill.llc.motions import load_motions
    from anyskill.llc.shipped import CHECKPOINTS
    from anyskill.llc.tracking.route import train_tracking_route

    torch.set_num_threads(1)
    run, root = tmp_path / "run", tmp_path / "root"
    train_tracking_route(load_motions(two_clips)[0], run, scale="smoke", progress=False)
    assert main(["ship-llc", str(run), "--root", str(root), "--calm", str(CHECKPOINTS / "llc_calm_laptop.pth"),
                 "--motions", str(two_clips), "--skill-seconds", "0.5", "--idle-seconds", "0.5",
                 "--random-seconds", "0.5"]) == 0
    ck = root / "anyskill" / "checkpoints"
    state = torch.load(ck / "llc_laptop.pth", map_location="cpu", weights_only=False)
    assert "student" in state and not any("optim" in k for k in state)
    assert load_llc(ck / "llc_laptop.pth").latent_dim == 64
    summary = json.loads((root / "results" / "llc_laptop_interface.json").read_text())
    assert set(summary["interface"]) == {"shipped", "untrained", "calm"} and "replay" in summary["tracker"]
    for name in ("llc_laptop_skills.png", "llc_laptop_route_curves.png", "llc_laptop_sliding.png"):
        assert (root / "figures" / name).stat().st_size > 1000
    card = (ck / "llc_laptop.md").read_text()
    assert card.startswith("# Model card: `llc_laptop.pth`") and "CALM `laptop` (the default before" in card
    assert card in capsys.readouterr().out and "previous default" not in card
    assert "switched every 5 steps: stay up (of 128 characters)" in card
    # another run shipped over it: the replaced default's recorded numbers stay on the card, with their commit
    import shutil

    shutil.copytree(run, tmp_path / "run2")
    (tmp_path / "history.txt").write_text("It continues the student shipped before.\n")
    assert main(["ship-llc", str(tmp_path / "run2"), "--root", str(root), "--calm",
                 str(CHECKPOINTS / "llc_calm_laptop.pth"), "--motions", str(two_clips), "--skill-seconds", "0.5",
                 "--idle-seconds", "0.5", "--random-seconds", "0.5", "--history", str(tmp_path / "history.txt")]) == 0
    again = json.loads((root / "results" / "llc_laptop_interface.json").read_text())
    assert again["previous"]["random_held"] == summary["interface"]["shipped"]["random_held"]
    card = (ck / "llc_laptop.md").read_text()
    assert "| previous default (recorded at" in card and "* It continues the student shipped before." in card
    # the same run's student after an RL fine-tune on random latents ships in its place, the distilled one beside it
    from anyskill.config.tracking import LatentFinetuneConfig
    from anyskill.llc.tracking.latent_finetune import latent_finetune

    latent_finetune(load_motions(two_clips)[0], tmp_path / "run2" / "llc.pth", tmp_path / "ft",
                    LatentFinetuneConfig(num_envs=4, horizon=4, minibatch=8, epochs=1, critic_warmup_iters=1,
                                         total_samples=32, num_threads=1, learn_threads=1), progress=False)
    assert main(["ship-llc", str(tmp_path / "run2"), "--finetune", str(tmp_path / "ft"), "--root", str(root),
                 "--calm", str(CHECKPOINTS / "llc_calm_laptop.pth"), "--motions", str(two_clips), "--skill-seconds",
                 "0.5", "--idle-seconds", "0.5", "--random-seconds", "0.5"]) == 0
    tuned = json.loads((root / "results" / "llc_laptop_interface.json").read_text())
    assert tuned["previous"]["random_held"] == again["interface"]["shipped"]["random_held"]
    assert 0.0 <= tuned["interface"]["shipped"]["hlc_free"] <= 1.0
    state = torch.load(ck / "llc_laptop.pth", map_location="cpu", weights_only=False)
    assert state["samples"] == 32 and "critic" not in state and "anchor_student" not in state
    card = (ck / "llc_laptop.md").read_text()
    assert "* Stage 3, RL fine-tune of π_L" in card and "**32 samples" in card
    assert "RL fine-tune (stage 3): falls per 1000 env-steps" in card
    assert "| latents of an untrained π_H (free action, every 5 steps): stay up (of 128 characters) | ≥ 95 % |" in card
    assert (root / "figures" / "llc_laptop_latent_finetune.png").stat().st_size > 1000
    assert (ck / "llc_laptop_latent_finetune_curve.csv").is_file()


def test_compare_llc_pose_trains_and_keeps_other_rows(llc_path, tmp_path):
    out = tmp_path / "pose.csv"
    args = ["compare-llc-pose", "--epochs", "1", "--envs", "2", "--clips", "authored_squat", "--eval-seconds", "0.3",
            "--out", str(out)]
    assert main([*args, "--controller", f"arm={llc_path}"]) == 0
    assert main([*args, "--controller", f"arm again={llc_path}"]) == 0
    assert main([*args, "--controller", f"arm={llc_path}", "--latent-action", "anchored"]) == 0
    df = pd.read_csv(out, comment="#")
    assert sorted(zip(df["controller"], df["latent_action"], strict=True)) == [("arm", "anchored"), ("arm", "free"),
                                                                  ("arm again", "free")]
    assert (df["pose_error_untrained_m"] > 0).all() and "kept_rows_from" in out.read_text()
    # a replaced controller's rows renamed; every kept group names the run that wrote it, unnested
    from anyskill.hlc.pose_comparison import row_sources

    assert main([*args, "--controller", f"new={llc_path}", "--relabel", "arm=arm (previous)"]) == 0
    df = pd.read_csv(out, comment="#")
    assert set(df["controller"]) == {"arm (previous)", "arm again", "new"}
    header = [ln[2:] for ln in out.read_text().splitlines() if ln.startswith("# ")]
    sources = row_sources(header)
    assert set(sources) == {"arm (previous), free", "arm (previous), anchored", "arm again, free", "new, free"}
    assert all(v["commit"] and v["started"] for v in sources.values()) and '\\"' not in out.read_text()
    with pytest.raises(ValueError, match="LABEL=CHECKPOINT"):
        main([*args, "--controller", "no-path"])


def test_et_study_merges_each_run_into_its_file(llc_path, tmp_path):
    out = tmp_path / "et.csv"
    args = ["et-study", "--epochs", "1", "--envs", "2", "--clips", "authored_squat", "--eval-seconds", "0.3",
            "--llc", str(llc_path), "--out", str(out)]
    assert main([*args, "--variants", "paper", "truncate"]) == 0
    first = pd.read_csv(out, comment="#")
    assert main([*args, "--variants", "paper", "--seeds", "1"]) == 0
    assert main([*args, "--variants", "paper"]) == 0  # measured again: replaces its row
    df = pd.read_csv(out, comment="#")
    assert sorted(zip(df["early_termination"], df["seed"], strict=True)) == [("paper", 0), ("paper", 1),
                                                                             ("truncate", 0)]
    assert (df["pose_error_untrained_m"] > 0).all() and df["commit"].notna().all()
    row = df[(df["early_termination"] == "paper") & (df["seed"] == 0)].iloc[0]
    assert row["started"] >= first[first["early_termination"] == "paper"].iloc[0]["started"]
    assert row["pose_error_untrained_m"] == pytest.approx(first["pose_error_untrained_m"].iloc[0])  # deterministic
    from anyskill.viz.hlc import plot_early_termination_study

    fig = plot_early_termination_study(df)  # one panel (one training size), a bar per early termination
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 2
    with pytest.raises(ValueError, match="unknown early termination"):
        from anyskill.hlc.et_study import study_early_termination

        study_early_termination(out, ("authored_squat",), ("sometimes",))


def test_the_cards_high_level_section_shows_each_latent_action_and_the_sigma_sweep(tmp_path):
    from anyskill.llc.card import ANCHOR_SWEEP, hlc_section

    pose = tmp_path / "llc_hlc_pose_goals.csv"
    pose.write_text("# commit: x\ngoal_clip,controller,latent_action,pose_error_untrained_m,pose_error_trained_m,"
                    "train_s\nsquat,shipped,free,0.5,0.2,1\nsquat,shipped,anchored,0.3,0.25,1\n")
    lines = hlc_section(pose)
    assert "| shipped | anchored | 0.300 | 0.250 |" in lines[-1] and not any("σ —" in ln for ln in lines)
    (tmp_path / ANCHOR_SWEEP).write_text("anchor_scale,anchored_survival\n0.3,1.0\n2.0,0.19\n")
    lines = hlc_section(pose)
    assert any("untrained π_H" in ln and "32 characters" in ln for ln in lines) and "| 2 | 0.190 |" in lines[-1]
    (tmp_path / ANCHOR_SWEEP).write_text("anchor_scale,characters,anchored_survival\n0.3,128,1.0\n")
    lines = hlc_section(pose)
    assert any("128 characters" in ln for ln in lines) and lines[-1].endswith("| 0.300 | 1 |")
    assert hlc_section(tmp_path / "missing.csv") == []
