"""Data-parallel training of the tracking route under torchrun (anyskill.llc.distributed): two CPU processes (gloo)
hold one model and reproduce the single-process run; checkpoints resume with another process count; the CLI trains
the whole route with two processes.

The tolerance of "the curve matches the single-process run". Two processes with their own seeds see other worlds
than one process does, so their curve can only agree statistically (checked loosely below). The exact check runs
both processes on rank 0's seed (``ANYSKILL_DDP_MIRROR=1``): every gradient, KL, statistic and failure rate is then
the mean of two identical values, exactly the single-process value, and the first iteration is bit-identical. From
the second on, one thing differs by design: the normaliser merges the batch of both processes, so its count grows
by 2n instead of n and its start value (1e-4) weighs ~1e-6 less; weights then differ in the 6th-7th digit.
Rewards and tracking errors of the curve stay within 1e-4 (relative) of the single-process ones; the KL, a
difference of nearly equal log-probabilities, within 1e-2; the learning rate, decided by thresholds on the KL, is
the same.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from anyskill.llc import distributed as ddp
from anyskill.llc.nets import RunningNorm

REPO = Path(__file__).resolve().parent.parent
WORKER = REPO / "tests" / "ddp_tracker_worker.py"
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
ITERATIONS = 4


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}
    env.pop(ddp.MIRROR_ENV, None)
    return {**env, **extra}


def _run(cmd: list[str], **env: str) -> None:
    done = subprocess.run(cmd, cwd=REPO, env=_env(**env), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def _worker(out: Path, processes: int, *args: str, **env: str) -> Path:
    launcher = TORCHRUN if processes == 2 else [sys.executable]
    _run([*launcher, str(WORKER), str(out), "--iterations", str(ITERATIONS), *args], **env)
    return out


def test_helpers_are_the_identity_in_one_process():
    assert not ddp.is_distributed() and ddp.rank() == 0 and ddp.world_size() == 1 and ddp.is_main()
    x = torch.randn(5, 3)
    assert ddp.all_reduce_mean(x) is x and ddp.rank_seed(7) == 7 and ddp.broadcast_flag(True)
    net = torch.nn.Linear(3, 2)
    net(x).sum().backward()
    grad = net.weight.grad.clone()
    ddp.sync_gradients(net)
    assert torch.equal(net.weight.grad, grad)
    a, b = RunningNorm(3), RunningNorm(3)
    a.update(x)
    ddp.update_norm(b, x)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    mean, var, n = ddp.batch_moments(x)
    assert n == 5 and torch.allclose(mean, x.mean(0)) and torch.allclose(var, x.var(0, unbiased=False))


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_zero_opens_a_tensorboard_event_file(tmp_path, monkeypatch, rank):
    """rl-games' constructor opens an event file on every process, named by the second and the host only: ranks
    above 0 must open none, or two ranks starting in the same second write one file over each other."""
    from rl_games.common import a2c_common

    from anyskill.llc.calm import agent

    monkeypatch.setattr(ddp, "is_distributed", lambda: True)
    monkeypatch.setattr(ddp, "rank", lambda: rank)
    make = a2c_common.SummaryWriter
    with agent._no_writer_off_rank_zero():
        writer = a2c_common.SummaryWriter(str(tmp_path))
    assert a2c_common.SummaryWriter is make
    if writer is not None:
        writer.close()
    assert (writer is None) == (rank != 0)
    assert len(list(tmp_path.glob("events.*"))) == (1 if rank == 0 else 0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """The tracker at smoke sizes for 4 iterations: one process; two processes on one seed (mirror); two processes
    with their own seeds."""
    root = tmp_path_factory.mktemp("ddp")
    return {"single": _worker(root / "single", 1),
            "mirror": _worker(root / "mirror", 2, **{ddp.MIRROR_ENV: "1"}),
            "ranks": _worker(root / "ranks", 2)}


def _curve(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "tracker_curve.csv")


def _weights(run: Path, rank: int, suffix: str = "") -> list[dict[str, torch.Tensor]]:
    return torch.load(run / f"weights_rank{rank}{suffix}.pt", weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mirror", "ranks"])
def test_both_processes_hold_identical_weights_after_every_update(runs, kind):
    r0, r1 = _weights(runs[kind], 0), _weights(runs[kind], 1)
    assert len(r0) == len(r1) == ITERATIONS
    for it, (a, b) in enumerate(zip(r0, r1, strict=True)):
        for key in a:  # weights, normaliser mean / var / count: bit for bit
            assert torch.equal(a[key], b[key]), f"iteration {it + 1}: {key} differs between the processes"
    first, last = r0[0], r0[-1]
    assert not torch.equal(first["actor.2.weight"], last["actor.2.weight"])  # it did learn


@pytest.mark.slow
def test_the_curve_matches_the_single_process_run(runs):
    single, mirror, ranks = (_curve(runs[k]) for k in ("single", "mirror", "ranks"))
    assert len(single) == len(mirror) == len(ranks) == ITERATIONS
    # samples count every process: twice as many per iteration
    assert (mirror["samples"] == 2 * single["samples"]).all() and (ranks["samples"] == mirror["samples"]).all()
    # on one seed: the first iteration bit-identical, then within the tolerance of the module docstring
    for col in ("reward", "body_error_m", "local_error_m", "kl", "lr"):
        assert mirror[col].iloc[0] == single[col].iloc[0], col
    for col in ("reward", "body_error_m", "local_error_m", "terminations_per_step"):
        assert ((mirror[col] - single[col]).abs() <= 1e-4 * single[col].abs() + 1e-7).all(), col
    assert ((mirror["kl"] - single["kl"]).abs() <= 1e-2 * single["kl"].abs()).all()
    assert (mirror["lr"] == single["lr"]).all()
    # with their own seeds the processes see other worlds: the same learning problem, statistically (the reward
    # per iteration of different seeds differs by up to ~0.05 at these sizes)
    assert ((ranks["reward"] - single["reward"]).abs() < 0.15).all()
    assert abs(ranks["reward"].mean() - single["reward"].mean()) < 0.08


@pytest.mark.slow
def test_a_checkpoint_resumes_with_another_process_count(runs, tmp_path):
    import shutil

    # two processes -> one: the single process continues from the two-process checkpoint
    two = shutil.copytree(runs["ranks"], tmp_path / "two_then_one")
    _run([sys.executable, str(WORKER), str(two), "--iterations", "2", "--resume"])
    curve = _curve(two)
    per_two = 2 * 8 * 8
    assert list(curve["samples"]) == [per_two * k for k in range(1, ITERATIONS + 1)] + [
        per_two * ITERATIONS + 64, per_two * ITERATIONS + 128]
    start = _weights(runs["ranks"], 0)[-1]
    resumed = _weights(two, 0, "_resumed")
    assert len(resumed) == 2 and not torch.equal(resumed[0]["actor.2.weight"], start["actor.2.weight"])
    assert float(resumed[0]["norm.count"]) == pytest.approx(float(start["norm.count"]) + 64)
    # one process -> two: both continue from the one-process checkpoint, in step
    one = shutil.copytree(runs["single"], tmp_path / "one_then_two")
    _run([*TORCHRUN, str(WORKER), str(one), "--iterations", "1", "--resume"])
    curve = _curve(one)
    assert list(curve["samples"])[-2:] == [64 * ITERATIONS, 64 * ITERATIONS + per_two]
    a, b = _weights(one, 0, "_resumed"), _weights(one, 1, "_resumed")
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])


@pytest.mark.slow
def test_the_route_trains_with_two_processes_through_the_cli(tmp_path):
    from anyskill.llc.controller import load_llc

    out = tmp_path / "route"
    _run([*TORCHRUN, "-m", "anyskill.cli", "train-llc", "--route", "tracking", "--scale", "smoke", "--out",
          str(out), "--no-progress"])
    info = json.loads((out / "train_info.json").read_text())
    assert info["processes"] == 2 and info["tracker"]["samples"] >= 128 and info["distill"]["samples"] >= 128
    assert len(pd.read_csv(out / "tracker_curve.csv")) == 1  # 128 smoke samples = one iteration of 2 x 64
    llc = load_llc(out / "llc.pth")
    assert llc.latent_dim == 64


@pytest.mark.slow
def test_calm_trains_on_two_cpu_processes_in_rl_games_multi_gpu_loop(tmp_path):
    """CALM through rl-games' multi-GPU training loop on two gloo processes: one model on both after every epoch,
    rank 0 alone writes the checkpoint and TensorBoard, samples counted over both."""
    _run([*TORCHRUN, str(REPO / "tests" / "ddp_calm_worker.py"), str(tmp_path), "--epochs", "3"])
    r0, r1 = _weights(tmp_path, 0), _weights(tmp_path, 1)
    assert len(r0) == len(r1) == 3
    for it, (a, b) in enumerate(zip(r0, r1, strict=True)):
        for key in a:
            assert torch.equal(a[key], b[key]), f"epoch {it + 1}: {key} differs between the processes"
    assert not torch.equal(r0[0]["a2c_network.actor.trunk.0.weight"], r0[-1]["a2c_network.actor.trunk.0.weight"])
    run = tmp_path / "run"
    assert len(list((run / "nn").glob("*.pth"))) == 1 and len(list((run / "summaries").glob("events.*"))) == 1
    info = json.loads((run / "train_info.json").read_text())
    assert info["processes"] == 2 and info["epochs"] == 3
    assert info["samples"] == 2 * 3 * info["num_envs"] * info["config"]["horizon_length"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="NCCL needs CUDA GPUs (run where a GPU is lent)")
def test_nccl_collectives_on_the_gpus(tmp_path):
    """One process per GPU (NCCL refuses two on one GPU): the same weights, gradients and normaliser everywhere."""
    gpus = torch.cuda.device_count()
    launcher = [sys.executable] if gpus == 1 else [*TORCHRUN[:-1], str(gpus)]
    _run([*launcher, str(REPO / "tests" / "ddp_nccl_worker.py"), str(tmp_path)])
    records = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(gpus)]
    assert all(r["backend"] == "nccl" and r["world"] == gpus and r["flag"] for r in records)
    assert [r["device"] for r in records] == [f"cuda:{r}" for r in range(gpus)]
    for key in ("weights", "grads", "norm_mean", "count", "mean_rank"):
        assert all(r[key] == records[0][key] for r in records), key
    assert records[0]["count"] == pytest.approx(32 * gpus, abs=1e-3)
    assert records[0]["mean_rank"] == pytest.approx((gpus - 1) / 2)
