"""The RL fine-tune of a distilled π_L on random and switching latents (anyskill.llc.tracking.latent_finetune)."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from anyskill.config.tracking import DistillConfig, LatentFinetuneConfig
from anyskill.llc.tracking.distill import student_config
from anyskill.llc.tracking.latent_finetune import (
    CADENCE_RANDOM,
    CLIP,
    FINETUNE_REGIMES,
    HELD_RANDOM,
    INTERVAL_RANDOM,
    draw_finetune_regimes,
    next_switch,
)
from anyskill.llc.tracking.student import StudentController, StudentNetworks, save_student
from anyskill.motion.library import MotionLibrary


def test_regimes_are_drawn_as_configured_and_switch_at_their_cadence():
    cfg = LatentFinetuneConfig(held_random_prob=0.2, cadence_random_prob=0.3, interval_random_prob=0.1,
                               llc_steps=5, max_switch_steps=40)
    gen = torch.Generator().manual_seed(0)
    r = draw_finetune_regimes(cfg, 40_000, gen)
    share = torch.bincount(r, minlength=4).float() / len(r)
    assert torch.allclose(share, torch.tensor([0.2, 0.3, 0.1, 0.4]), atol=0.01)
    due = next_switch(cfg, r, gen)
    assert (due[r == CADENCE_RANDOM] == 5).all()
    span = due[r == INTERVAL_RANDOM]
    assert span.min() >= 5 and span.max() <= 40 and span.float().std() > 5
    assert (due[(r == HELD_RANDOM) | (r == CLIP)] == torch.iinfo(torch.long).max).all()
    with pytest.raises(ValueError, match="sum to <= 1"):
        LatentFinetuneConfig(held_random_prob=0.6, cadence_random_prob=0.6)


def _tiny_student(path) -> StudentNetworks:
    net = StudentNetworks(student_config(DistillConfig(enc_units=(32,), policy_units=(32, 32)), 223, 28, 125,
                                         1.0 / 30.0))
    save_student(path, net, samples=0, iteration=0)
    return net


def test_critic_warms_up_then_the_policy_learns_resumes_and_loads_as_a_controller(motion_lib, tmp_path, capsys):
    """During the critic's warm-up π_L is untouched; then PPO moves it; a resumed run counts on from its checkpoint
    and keeps π_0 (the distilled policy) as the anchor; the result loads as a controller and acts."""
    from anyskill.cli import main
    from anyskill.llc import load_llc

    lib = MotionLibrary([motion_lib.clips[motion_lib.clip_names.index(n)] for n in ("idle_stand", "amp_humanoid_walk")])
    src = _tiny_student(tmp_path / "student.pth")
    cfg = LatentFinetuneConfig(num_envs=8, horizon=8, epochs=2, minibatch=32, critic_warmup_iters=2,
                               total_samples=8 * 8 * 2, num_threads=1, learn_threads=1, checkpoint_every_s=1e9)
    from anyskill.llc.tracking.latent_finetune import latent_finetune

    run = latent_finetune(lib, tmp_path / "student.pth", tmp_path / "ft", cfg, progress=False)
    ckpt = torch.load(run.checkpoint, weights_only=False)
    for k, v in src.state_dict().items():
        assert torch.equal(ckpt["student"][k], v), k  # warm-up: only the critic learnt
    assert run.samples == 128 and [r["actor_learning"] for r in run.curve] == [False, False]
    assert {f"falls_{name}" for name in FINETUNE_REGIMES} <= set(run.curve[0])

    # resumed through the CLI (on the bundled library) for two more iterations
    main(["finetune-llc", str(tmp_path / "student.pth"), "--out", str(tmp_path / "ft"), "--samples", "256",
          "--set", "num_envs=8", "horizon=8", "epochs=2", "minibatch=32", "critic_warmup_iters=2", "num_threads=1",
          "learn_threads=1", "--no-progress"])
    assert "256 samples" in capsys.readouterr().out
    ckpt = torch.load(tmp_path / "ft" / "llc.pth", weights_only=False)
    assert ckpt["samples"] == 256 and ckpt["iteration"] == 4
    moved = [k for k, v in src.state_dict().items()
             if k.startswith("policy") and not torch.equal(ckpt["student"][k], v)]
    assert moved, "PPO did not move the policy after the warm-up"
    assert all(torch.equal(ckpt["student"][k], v) for k, v in src.state_dict().items() if k.startswith("encoder"))
    assert all(torch.equal(ckpt["anchor_student"][k], v) for k, v in src.state_dict().items())
    curve = pd.read_csv(tmp_path / "ft" / "latent_finetune_curve.csv")
    assert list(curve["actor_learning"]) == [False, False, True, True]
    assert (curve["anchor_kl"].iloc[2:] > 0).all()
    # continued with other settings into another folder: π_0 stays the distilled policy, the first part is recorded
    more = latent_finetune(lib, tmp_path / "ft" / "llc.pth", tmp_path / "ft2",
                           dataclasses.replace(cfg, anchor_coef=0.05, total_samples=64), progress=False)
    part2 = torch.load(more.checkpoint, weights_only=False)
    (tmp_path / "ft2" / "STOP").touch()  # stops after one more iteration, with its checkpoint and curve
    stopped = latent_finetune(lib, tmp_path / "ft" / "llc.pth", tmp_path / "ft2",
                              dataclasses.replace(cfg, total_samples=10**6), progress=False)
    assert stopped.samples == 128 and not (tmp_path / "ft2" / "STOP").exists()
    assert len(pd.read_csv(tmp_path / "ft2" / "latent_finetune_curve.csv")) == 2
    assert all(torch.equal(part2["anchor_student"][k], v) for k, v in src.state_dict().items())
    assert part2["finetuned_from"] == str(tmp_path / "student.pth") and part2["samples"] == 64
    (first,) = part2["finetune_phases"]
    assert first["samples"] == 256 and first["settings"]["anchor_coef"] == 0.2 and first["wall_s"] > 0
    assert part2["latent_finetune"]["anchor_coef"] == 0.05
    llc = load_llc(tmp_path / "ft" / "llc.pth")
    assert isinstance(llc, StudentController)
    a = llc.act(torch.zeros(3, 223), torch.nn.functional.normalize(torch.randn(3, 64), dim=-1))
    assert a.shape == (3, 28) and a.abs().max() <= 1.0


def test_a_fine_tune_folder_of_something_else_is_refused(motion_lib, tmp_path):
    from anyskill.llc.tracking.latent_finetune import latent_finetune

    _tiny_student(tmp_path / "student.pth")
    _tiny_student(tmp_path / "ft" / "llc.pth")  # a distilled student, not a fine-tune: never overwritten
    with pytest.raises(ValueError, match="not a latent fine-tune checkpoint"):
        latent_finetune(motion_lib, tmp_path / "student.pth", tmp_path / "ft", LatentFinetuneConfig(num_envs=4))
