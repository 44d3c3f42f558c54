"""A table's trainings as independent tasks (anyskill.eval.executor, anyskill.eval.methods.run_method_tasks): in this
process and as Ray tasks on a local Ray; each writes its record into its own folder; a failed task is reported and
rerun without redoing the others, also across calls."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from hlc_fixtures import build_arm_llc

from anyskill.eval import methods
from anyskill.eval.executor import InProcess, RayExecutor, TaskFailure, make_executor
from anyskill.eval.methods import (
    TASK_RECORD,
    TASK_ROLLOUT,
    MethodContext,
    TasksFailed,
    compare_methods,
    method_tasks,
    run_method_tasks,
)
from anyskill.eval.tables import assemble_table
from anyskill.hlc.rollout import RolloutResult
from anyskill.humanoid.model import load_humanoid


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    """The smallest context that trains: the hand-built arm controller, random CLIP, 4 envs, 2 epochs."""
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
        max_epochs=2, num_envs=4)


def test_executors_return_results_in_order_and_failures_as_values():
    def fn(task, shared):
        if task == 2:
            raise ValueError("two")
        return task * shared

    out = InProcess().map(fn, [1, 2, 3], 10, names=["a", "b", "c"])
    assert out[0] == 10 and out[2] == 30
    assert isinstance(out[1], TaskFailure) and out[1].name == "b" and out[1].error == "ValueError: two"
    assert "raise ValueError" in out[1].traceback
    assert make_executor("ray", "auto", gpus_per_task=1).describe()["gpus_per_task"] == 1
    with pytest.raises(ValueError):
        make_executor("slurm")


def _fake_pipeline(monkeypatch, calls: list[str], fail: dict[str, int]):
    """train/rollout/measure replaced by instant fakes; ``fail[key]``: how many first attempts of ``key`` raise."""

    def train(method, prompt, ctx, out_dir, seconds, scene):
        calls.append(method.key)
        if fail.get(method.key, 0) > 0:
            fail[method.key] -= 1
            raise RuntimeError(f"{method.key} diverged")
        return methods.MethodRun(method, prompt, prompt, None)

    def rollout(run, ctx, seconds):
        return RolloutResult(times=np.arange(3) / 30, qpos=np.zeros((3, 35)), body_pos=np.zeros((3, 15, 3)),
                             body_rot=np.zeros((3, 15, 4)), similarity=np.zeros(3), latents=np.zeros((0, 64)),
                             goal=run.prompt)

    def measure(run, result, clip, stride):
        return {"method": run.method.key, "label": run.method.label, "prompt": run.prompt, "clip_s": 1.0}

    monkeypatch.setattr(methods, "train_method", train)
    monkeypatch.setattr(methods, "rollout_method", rollout)
    monkeypatch.setattr(methods, "measure", measure)


def test_a_failed_task_is_rerun_without_redoing_the_others(ctx, tmp_path, monkeypatch, capsys):
    calls: list[str] = []
    _fake_pipeline(monkeypatch, calls, fail={"ours_no_et": 1})
    tasks = method_tasks(("ours_full", "ours_no_et"), ["kick", "wave hi"], tmp_path)
    rows, rollouts = run_method_tasks(tasks, ctx)
    # ours_no_et on "kick" fails once and passes on its rerun; every other task ran once
    assert calls.count("ours_full") == 2 and calls.count("ours_no_et") == 3
    assert "training failed (attempt 1 of 2): ours_no_et on 'kick'" in capsys.readouterr().out
    assert [r["method"] for r in rows] == ["ours_full", "ours_no_et", "ours_full", "ours_no_et"]
    assert set(rollouts) == {(k, p) for k in ("ours_full", "ours_no_et") for p in ("kick", "wave hi")}
    record = json.loads((tmp_path / "prompt0" / "ours_full" / TASK_RECORD).read_text())
    assert record["row"]["method"] == "ours_full" and record["provenance"]["commit"]
    assert record["task"]["prompt"] == "kick" and record["task"]["llc"] == str(ctx.llc_checkpoint)


def test_failures_that_persist_are_reported_and_the_next_call_redoes_only_them(ctx, tmp_path, monkeypatch):
    calls: list[str] = []
    _fake_pipeline(monkeypatch, calls, fail={"ours_no_et": 2})  # fails, and fails again on its rerun
    tasks = method_tasks(("ours_full", "ours_no_et"), ["kick"], tmp_path)
    with pytest.raises(TasksFailed, match="1 of 2 trainings failed") as e:
        run_method_tasks(tasks, ctx)
    assert "ours_no_et on 'kick'" in str(e.value) and "RuntimeError: ours_no_et diverged" in str(e.value)
    assert (tmp_path / "prompt0" / "ours_full" / TASK_RECORD).is_file()
    assert not (tmp_path / "prompt0" / "ours_no_et" / TASK_RECORD).exists()
    calls.clear()
    rows, _ = run_method_tasks(tasks, ctx)  # ours_full finished before: only the failed one runs
    assert calls == ["ours_no_et"] and [r["method"] for r in rows] == ["ours_full", "ours_no_et"]
    calls.clear()
    run_method_tasks(tasks, ctx, reuse=False)
    assert sorted(calls) == ["ours_full", "ours_no_et"]
    # a record made with other inputs is not reused
    other = replace(ctx, seed=1)
    calls.clear()
    run_method_tasks(tasks, other)
    assert sorted(calls) == ["ours_full", "ours_no_et"]


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_two_trainings_as_ray_tasks_assemble_one_table(ctx, tmp_path, local_ray):
    executor = RayExecutor(init_options={"num_cpus": 2})
    rows, rollouts = compare_methods(("ours_full", "ours_no_et"), ["kick"], ctx, tmp_path, seconds=0.4,
                                     clip_stride=6, executor=executor)
    assert [r["method"] for r in rows] == ["ours_full", "ours_no_et"]
    for key in ("ours_full", "ours_no_et"):
        folder = tmp_path / "prompt0" / key
        record = json.loads((folder / TASK_RECORD).read_text())
        assert record["worker"]["pid"] != os.getpid()  # trained in a Ray worker, into the same layout
        assert (folder / TASK_ROLLOUT).is_file() and list(folder.rglob("*.pth"))
        assert record["provenance"]["clip_weights"] == ctx.clip_model.spec.description
        assert rollouts[key, "kick"].body_pos.shape[1:] == (15, 3)
    table = assemble_table(1, pd.DataFrame(rows)).set_index("key")
    for key in ("ours_full", "ours_no_et"):
        assert table.loc[key, "prompts"] == 1 and np.isfinite(float(table.loc[key, "ours: CLIP_S"]))
    assert table.loc["ours_full", "method"] == "Ours (full)" and table.loc["ours_no_et", "method"] == "Ours (w/o ET)"


def test_reproduce_hands_the_executor_to_the_notebooks_that_take_one(tmp_path, monkeypatch):
    import anyskill.reproduce as rep
    from anyskill.reproduce import list_notebooks

    calls = []
    monkeypatch.setattr(rep, "run_notebook", lambda nb, out, scale, seed, extra: calls.append((nb.name, extra)))
    assert rep.reproduce("smoke", tmp_path, only=["06", "07", "08", "09"], executor="ray", ray_address="auto") == 0
    fan_out = {"device": "cpu", "executor": "ray", "ray_address": "auto"}
    assert calls == [(n.name, fan_out if n.name[:2] in ("07", "08", "09") else {"device": "cpu"})
                     for n in list_notebooks(["06", "07", "08", "09"])]
    calls.clear()
    assert rep.reproduce("smoke", tmp_path, only=["07"]) == 0  # the default: the notebook's own (in process)
    assert calls == [("07_table1.ipynb", {"device": "cpu"})]
    calls.clear()
    assert rep.reproduce("smoke", tmp_path, only=["06", "07"], latent_action="anchored", anchor_scale=1.0) == 0
    assert calls == [("06_interaction_scenes.ipynb", {"device": "cpu"}),
                     ("07_table1.ipynb", {"device": "cpu", "latent_action": "anchored", "anchor_scale": 1.0})]


def test_table_task_lists_the_notebooks_trainings(capsys):
    from anyskill.cli import main
    from anyskill.eval.table_runs import notebook_defaults, table_tasks

    defaults = notebook_defaults(1)
    assert defaults["executor"] == "inprocess" and isinstance(defaults["prompts"], list)
    assert main(["table-task", "--table", "1", "--scale", "laptop", "--out", "OUT", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    tasks = table_tasks(1, defaults["prompts"], "OUT/runs", "laptop")
    assert len(lines) == len(tasks) == 3 * 5  # laptop: 3 prompts x the 5 methods of Table 1
    assert lines[4] == f"4\t{tasks[4].name}" and "OUT/runs/table1_laptop/prompt0/ours_full" in lines[4]
    with pytest.raises(ValueError, match="--index must be in 0..1"):
        main(["table-task", "--table", "2", "--scale", "smoke", "--out", "OUT", "--index", "7"])


@pytest.mark.slow
def test_trainings_of_a_slurm_array_are_reused_by_the_notebook(tmp_path):
    """The SLURM recipe (README, "A cluster"): one `anyskill table-task` per array index, then the notebook only
    assembles the table from their records."""
    import subprocess
    import sys

    from anyskill.reproduce import list_notebooks, run_notebook

    for index in ("0", "1"):
        done = subprocess.run([sys.executable, "-m", "anyskill.cli", "table-task", "--table", "2", "--scale", "smoke",
                               "--out", str(tmp_path), "--index", index], capture_output=True, text=True,
                              env={**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
        assert done.returncode == 0, done.stderr[-3000:]
    records = sorted(tmp_path.glob("runs/table2_smoke/*/prompt0/ours_full/task.json"))
    assert [r.parts[-4] for r in records] == ["ball", "door"]
    executed = run_notebook(list_notebooks(["08"])[0], tmp_path, scale="smoke")
    outputs = "".join("".join(o.get("text", "")) for c in json.loads(executed.read_text())["cells"]
                      for o in c.get("outputs", []))
    assert "2 of 2 trainings finished before (task.json in their folders): reused" in outputs
    assert (tmp_path / "results" / "table2.md").is_file()
