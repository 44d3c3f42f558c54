"""Where the independent trainings of a table run: one after the other in this process (``inprocess``, the
default) or as Ray tasks (``ray``: a local Ray started on this machine, or the Ray cluster at ``address``).

    executor = make_executor("ray")                          # local Ray, one CPU per task
    executor = make_executor("ray", "auto", gpus_per_task=1)  # the cluster this node belongs to (`ray start ...`)
    results = executor.map(fn, tasks, shared, names=[...])   # fn(task, shared) for every task, in the order given

An executor runs ``fn(task, shared)`` for each task and returns the results in the order of the tasks; a task that
raised comes back as a :class:`TaskFailure` (its name, the error, the traceback), after the others have finished
— nothing else is lost. Callers decide what to do with failures (:func:`anyskill.eval.methods.run_method_tasks`
reruns them and reports the ones that keep failing).

With Ray, ``shared`` (e.g. a :class:`~anyskill.eval.methods.MethodContext`) goes to the object store once and every
task receives it. Two of its parts do not travel as they are: a CLIP model goes as its :class:`ClipSpec` (rebuilt
in the worker: the same deterministic weights, from the worker's cache for pretrained ones), a renderer as its
MuJoCo model and camera (an OpenGL context cannot be pickled), a CALM controller as its description and weights.
Every task asks ``cpus_per_task`` CPUs and
``gpus_per_task`` GPUs of Ray (a GPU task sees its GPU as ``cuda:0``); Ray reruns a task whose worker died
(``max_retries``). On a cluster every node needs this package installed and the output folders on a shared file
system (README, "A cluster").
"""

from __future__ import annotations

import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
C = TypeVar("C")
R = TypeVar("R")

EXECUTORS = ("inprocess", "ray")


@dataclass
class TaskFailure:
    """A task that raised: its ``name``, the ``error`` (one line) and the ``traceback``."""

    name: str
    error: str
    traceback: str = ""


class Executor(ABC):
    """Runs independent tasks (module docstring)."""

    kind: str = ""

    @abstractmethod
    def map(self, fn: Callable[[T, C], R], tasks: Sequence[T], shared: C,
            names: Sequence[str] | None = None) -> list[R | TaskFailure]:
        """``fn(task, shared)`` for every task; results (or :class:`TaskFailure`) in the order of ``tasks``."""

    def describe(self) -> dict[str, Any]:
        """What the provenance of a result records about where its tasks ran."""
        return {"executor": self.kind}


class InProcess(Executor):
    """The tasks one after the other in this process."""

    kind = "inprocess"

    def map(self, fn: Callable[[T, C], R], tasks: Sequence[T], shared: C,
            names: Sequence[str] | None = None) -> list[R | TaskFailure]:
        names = list(names) if names is not None else [str(t) for t in tasks]
        out: list[R | TaskFailure] = []
        for task, name in zip(tasks, names, strict=True):
            try:
                out.append(fn(task, shared))
            except Exception as e:  # a task's failure is reported with the others' results, not raised
                out.append(TaskFailure(name, f"{type(e).__name__}: {e}", traceback.format_exc()))
        return out


def _run_task(fn: Callable[[Any, Any], Any], task: Any, shared: Any) -> Any:
    return fn(task, shared)


class RayExecutor(Executor):
    """The tasks as Ray tasks, all submitted at once; Ray runs as many at a time as the resources allow.

    ``address``: None starts (or reuses) a local Ray on this machine; "auto" joins the cluster of this node; a
    ``ray://host:10001`` address connects a client. ``init_options`` go to ``ray.init`` (e.g. ``num_cpus``). A Ray
    that :meth:`map` started it also stops at its end (a local Ray's processes do not outlive the call); one that
    was running before stays."""

    kind = "ray"

    def __init__(self, address: str | None = None, cpus_per_task: float = 1.0, gpus_per_task: float = 0.0,
                 max_retries: int = 1, init_options: dict[str, Any] | None = None, progress: bool = True):
        self.address = address or None
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task
        self.max_retries = max_retries
        self.init_options = dict(init_options or {})
        self.progress = progress

    def describe(self) -> dict[str, Any]:
        return {"executor": self.kind, "ray_address": self.address or "local", "cpus_per_task": self.cpus_per_task,
                "gpus_per_task": self.gpus_per_task}

    def _ray(self):
        try:
            import ray
        except ImportError as e:  # pragma: no cover - ray is a dependency of the package
            raise ImportError("the ray executor needs Ray: pip install -e '.[cluster]' (or 'ray>=2.9')") from e
        return ray

    def map(self, fn: Callable[[T, C], R], tasks: Sequence[T], shared: C,
            names: Sequence[str] | None = None) -> list[R | TaskFailure]:
        names = list(names) if names is not None else [str(t) for t in tasks]
        if not tasks:
            return []
        ray = self._ray()
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, **{"include_dashboard": False, "log_to_driver": True, **self.init_options})
        try:
            register_serializers(ray)
            return self._map(ray, fn, tasks, shared, names)
        finally:
            if started:
                ray.shutdown()

    def _map(self, ray, fn: Callable[[T, C], R], tasks: Sequence[T], shared: C,
             names: Sequence[str]) -> list[R | TaskFailure]:
        shared_ref = ray.put(shared)
        remote = ray.remote(_run_task).options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                               max_retries=self.max_retries)
        index = {remote.remote(fn, task, shared_ref): i for i, task in enumerate(tasks)}
        out: list[Any] = [None] * len(tasks)
        pending, t0, done = list(index), time.perf_counter(), 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                i = index[ref]
                try:
                    out[i] = ray.get(ref)
                    state = "done"
                except ray.exceptions.RayTaskError as e:  # the task raised: its own error and traceback
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    out[i] = TaskFailure(names[i], f"{type(cause).__name__}: {cause}".splitlines()[0], str(e))
                    state = "FAILED"
                except ray.exceptions.RayError as e:  # the worker or its node died (after Ray's retries)
                    out[i] = TaskFailure(names[i], f"{type(e).__name__}: {e}".splitlines()[0], str(e))
                    state = "FAILED"
                done += 1
                if self.progress:
                    print(f"[ray] {done}/{len(tasks)} {state}: {names[i]} ({time.perf_counter() - t0:.0f} s)",
                          flush=True)
        return out


def make_executor(kind: str = "inprocess", address: str | None = None, **options: Any) -> Executor:
    """The executor ``kind`` (:data:`EXECUTORS`); ``address`` and ``options`` (``cpus_per_task``, ``gpus_per_task``,
    ``max_retries``, ``init_options``) apply to Ray."""
    if kind == "inprocess":
        return InProcess()
    if kind == "ray":
        return RayExecutor(address, **options)
    raise ValueError(f"executor must be one of {EXECUTORS}, got {kind!r}")


# ---------------------------------------------------------------------------------------------- Ray serialisation
def _clip_state(model) -> tuple:
    return (model.spec, model.raw_pixels)


def _clip_rebuild(state: tuple):
    from anyskill.reward.clip_model import ClipModel

    spec, raw_pixels = state
    return ClipModel(spec, raw_pixels=raw_pixels)


def _renderer_state(renderer) -> tuple:
    return (renderer.model, renderer.camera_spec, renderer.fast)


def _renderer_rebuild(state: tuple):
    from anyskill.sim.render import StateRenderer

    model, camera, fast = state
    return StateRenderer(model, camera, fast=fast)


def _llc_state(llc) -> tuple:
    device = next(llc.parameters()).device
    return (llc.config, {k: v.cpu() for k, v in llc.state_dict().items()}, str(device))


def _llc_rebuild(state: tuple):
    from anyskill.llc.controller import LowLevelController

    config, weights, device = state
    llc = LowLevelController(config)
    llc.load_state_dict(weights)
    for p in llc.parameters():
        p.requires_grad_(False)
    return llc.to(device).eval()


def register_serializers(ray) -> None:
    """Teach Ray to ship a CLIP model as its spec, a renderer as its model and camera, and a CALM controller as its
    description and weights (rl-games' TorchScript normalisers do not pickle) (module docstring)."""
    from anyskill.llc.controller import LowLevelController
    from anyskill.reward.clip_model import ClipModel
    from anyskill.sim.render import StateRenderer

    ray.util.register_serializer(ClipModel, serializer=_clip_state, deserializer=_clip_rebuild)
    ray.util.register_serializer(StateRenderer, serializer=_renderer_state, deserializer=_renderer_rebuild)
    ray.util.register_serializer(LowLevelController, serializer=_llc_state, deserializer=_llc_rebuild)
