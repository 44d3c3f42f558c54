"""CALM on CUDA without a GPU: device mixing caught on a CPU-only machine, two ways.

1. **Static** (:func:`test_calm_tensor_factories_name_their_device`): every tensor factory and generator in the CALM
   route (``anyskill/llc/calm/*.py``) and in the motion library and frame grid names its device (``device=``, or a
   ``**options`` dict that holds one), except the places on :data:`CPU_BY_DESIGN`, each with its reason. Catches a
   tensor made on the CPU by default in code that runs on the GPU (e.g. an index ``torch.arange(n)`` meeting cuda
   tensors). Cannot tell whether the named device is the right one (``device=lib.device`` where the agent's was
   meant), nor see tensors that arrive from elsewhere (the env, ``.cpu()`` results, numpy).
2. **Dynamic** (the other tests): the CALM training path — ``train_llc(device="cuda:0")``: motion library and frame
   grid built on the device, ``HumanoidEnv`` on cuda:0 (its physics in MuJoCo C), the rl-games agent, rollout,
   latent schedule, update, discriminator step, checkpoint with exact-resume file, and resume — runs under
   :func:`fake_cuda.fake_cuda`, a stand-in CUDA device whose tensors hold CPU data and raise
   :class:`~fake_cuda.DeviceMismatch` wherever CUDA would reject mixing devices (rules and blind spots in
   ``tests/fake_cuda.py``: not the Warp backend, bf16 autocast, cuda:0 vs cuda:1, host syncs, silent copies).
   On the code before the fix this run stopped at the first of the four places the H200 run found (seeding the AMP
   normaliser with CPU demo frames) and, recording instead of raising, listed 10 distinct mixing sites in agent,
   networks and frame grid; :func:`test_stand_in_cuda_catches_a_cpu_library_in_the_cuda_agent` keeps that failure
   reproducible. It sees only the code paths the short runs take (both CALM settings of ours and the paper's).
"""

from __future__ import annotations

import ast
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from fake_cuda import CudaTensor, DeviceMismatch, fake_cuda

import anyskill
from anyskill.config import profile
from anyskill.data import MOTIONS_DIR
from anyskill.llc import load_llc
from anyskill.llc.calm.networks import RunningNormalizer
from anyskill.llc.calm.train import train_llc

ROOT = Path(anyskill.__file__).parent
SCANNED = [*sorted((ROOT / "llc" / "calm").glob("*.py")), ROOT / "motion" / "library.py",
           ROOT / "motion" / "frame_grid.py"]
FACTORIES = {"zeros", "ones", "full", "empty", "arange", "rand", "randn", "randint", "randperm", "tensor", "as_tensor",
             "asarray", "linspace", "logspace", "eye", "from_numpy", "scalar_tensor", "empty_strided", "triu_indices",
             "tril_indices", "Generator"}
CPU_BY_DESIGN = {
    ("llc/calm/networks.py", "RunningNormalizer.__init__"): "module buffers: they move with Module.to()",
    ("llc/calm/networks.py", "CALMNetwork.__init__"): "module buffers and initial weights: they move with Module.to()",
    ("motion/library.py", "_clip_frames"): "per-clip float64 preprocessing of numpy arrays; __init__ moves the result "
                                           "to the library's device",
}
NUM_ENVS = 4


def factories_without_device(source: str) -> list[tuple[int, str, str]]:
    """(line, factory, enclosing Class.function) of every ``torch.<factory>(...)`` in ``source`` that names no
    device: no ``device=`` keyword and no ``**options`` splat of a dict assigned with a ``device`` key in the same
    function; a ``torch.Generator`` needs its device argument."""
    tree = ast.parse(source)
    found = []

    def visit(node: ast.AST, scope: tuple[str, ...], dicts_with_device: set[str]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            scope = (*scope, node.name)
            if not isinstance(node, ast.ClassDef):
                dicts_with_device = {t.id for n in ast.walk(node) if isinstance(n, (ast.Assign, ast.AnnAssign))
                                     for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                                     if isinstance(t, ast.Name) and n.value is not None and _has_device(n.value)}
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            named = any(k.arg == "device" or (k.arg is None and isinstance(k.value, ast.Name)
                                               and k.value.id in dicts_with_device) for k in node.keywords)
            if not named and not (node.func.attr == "Generator" and node.args):
                found.append((node.lineno, node.func.attr, ".".join(scope)))
        for child in ast.iter_child_nodes(node):
            visit(child, scope, dicts_with_device)

    visit(tree, (), set())
    return found


def _has_device(value: ast.expr) -> bool:
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
        return any(k.arg == "device" for k in value.keywords)
    if isinstance(value, ast.Dict):
        return any(isinstance(k, ast.Constant) and k.value == "device" for k in value.keys)
    return False


def test_calm_tensor_factories_name_their_device():
    assert factories_without_device("import torch\ndef f(d):\n    o = dict(device=d)\n    torch.zeros(3, **o)\n"
                                    "    torch.arange(3)\n    torch.Generator()\n    torch.rand(2, device=d)\n") == [
        (5, "arange", "f"), (6, "Generator", "f")]  # the check itself can fail
    unnamed = []
    for path in SCANNED:
        rel = path.relative_to(ROOT).as_posix()
        unnamed += [f"{rel}:{line} torch.{name} in {scope or '<module>'}"
                    for line, name, scope in factories_without_device(path.read_text())
                    if (rel, scope) not in CPU_BY_DESIGN]
    assert not unnamed, "tensors made on the CPU by default in code that runs on the GPU; pass device= (or add the " \
                        "place to CPU_BY_DESIGN with its reason):\n" + "\n".join(unnamed)


def test_stand_in_cuda_rejects_what_cuda_rejects():
    with fake_cuda():
        x = torch.zeros(3, device="cuda:0")
        assert isinstance(x, CudaTensor) and x.device == torch.device("cuda:0") and x.is_cuda
        assert (x + torch.tensor(2.0)).is_cuda and x[torch.tensor([0, 2])].is_cuda  # CPU scalars and indices: fine
        x[torch.tensor([0, 1])] = 1.0
        assert x.cpu().tolist() == [1.0, 1.0, 0.0] and not x.cpu().is_cuda
        for mixed in (lambda: x + torch.ones(3), lambda: torch.ones(3)[torch.tensor([0], device="cuda:0")],
                      lambda: torch.cat([x, torch.ones(1)]), lambda: x.__setitem__(torch.tensor([0, 1]), torch.ones(2)),
                      lambda: torch.rand(2, device="cuda:0", generator=torch.Generator("cpu")),
                      lambda: torch.rand(3, device="cuda:0") * torch.arange(3)):  # the H200 run's fourth crash
            with pytest.raises(DeviceMismatch, match="cuda"):
                mixed()
        with pytest.raises(TypeError, match="numpy"):
            x.numpy()
        assert torch.rand(2, device="cuda:0", generator=torch.Generator("cuda:0").manual_seed(0)).is_cuda
        norm = RunningNormalizer(4).to("cuda:0")  # the first crash: CPU demo frames into the AMP normaliser
        with pytest.raises(DeviceMismatch):
            norm.update(torch.randn(10, 4))
        norm.update(torch.randn(10, 4, device="cuda:0"))
        layer = torch.nn.Linear(4, 2).to("cuda:0")
        opt = torch.optim.Adam(layer.parameters())
        layer(torch.randn(5, 4, device="cuda:0")).pow(2).sum().backward()
        opt.step()
        assert layer.weight.grad.is_cuda
        cpu_state = torch.nn.Linear(4, 2).state_dict()
        layer.load_state_dict(cpu_state)  # copies the values (C++ sees the meta device, Python cuda:0)
        assert torch.equal(layer.weight.cpu(), cpu_state["weight"])
    assert torch.Generator is not None and type(torch.Generator()) is torch.Generator  # restored


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("motions") / "motions.yaml"
    entries = [{"file": str(MOTIONS_DIR / f"{name}.npz"), "weight": 1.0}
               for name in ("amp_humanoid_walk", "authored_idle_stand")]
    path.write_text(yaml.safe_dump({"motions": entries}))
    return path


def _train(manifest, out, epochs, **kwargs):
    return train_llc("smoke", motions=manifest, out_dir=out, num_envs=NUM_ENVS, max_epochs=epochs, progress=False,
                     device="cuda:0", backend="mujoco", **kwargs)


def test_calm_trains_and_resumes_on_stand_in_cuda(manifest, tmp_path):
    """Our CALM options (latents coupled to starts, tracking and key-pose rewards, sliding latents, negative
    samples), checkpoint + exact resume, then the paper's CALM settings (encoder trained through the policy, bf16
    precision where a GPU has it); all on the stand-in cuda:0."""
    ours = {"calm": {"track_latent_every": 3}}
    paper = {**asdict(profile("paper").llc.calm), "amp_batch_size": 64, "amp_minibatch_size": 64,
             "replay_buffer_size": 1024}
    agents = []
    with fake_cuda():
        first = _train(manifest, tmp_path / "a", 2, overrides=ours)
        resumed = _train(manifest, tmp_path / "b", 3, overrides=ours, resume=first.checkpoint,
                         epoch_callbacks=[lambda agent, stats: agents.append(agent)])
        agent = agents[0]
        assert agent.grid.frames.is_cuda and agent.motion_lib.device == torch.device("cuda:0")
        assert agent.latent_schedule.latents.is_cuda and agent.replay_buffer.data["amp_obs"].is_cuda
        paper_run = _train(manifest, tmp_path / "c", 2, overrides={"calm": paper})
    assert resumed.epochs == 3 and [int(s["epoch"]) for s in resumed.epoch_stats] == [3]
    assert paper_run.epochs == 2 and all(torch.isfinite(torch.tensor(s["disc_loss"])) for s in paper_run.epoch_stats)
    llc = load_llc(resumed.checkpoint)  # the checkpoint a GPU run writes loads on the CPU
    assert llc.latent_dim == 64 and not any(isinstance(p, CudaTensor) for p in llc.model.parameters())


def test_stand_in_cuda_catches_a_cpu_library_in_the_cuda_agent(manifest, tmp_path, monkeypatch):
    """The failure before the fix, kept reproducible: a motion library on the CPU read as is by the agent on cuda:0
    stops at the first place the H200 run found (CPU demo frames into the AMP normaliser)."""
    import anyskill.llc.calm.train as train_module
    import anyskill.llc.calm.windows as windows_module

    load = train_module.load_motions
    monkeypatch.setattr(train_module, "load_motions", lambda *a, **k: load(*a, **{**k, "device": "cpu"}))
    monkeypatch.setattr(windows_module, "same_device", lambda a, b: True)  # the agent no longer moves it
    with fake_cuda(), pytest.raises(DeviceMismatch, match="cuda:0 and on cpu"):
        _train(manifest, tmp_path / "cpu_lib", 1)
