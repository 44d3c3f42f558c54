"""A stand-in CUDA device on a CPU-only machine, to catch code that mixes devices without a GPU.

Inside :func:`fake_cuda`, every tensor made for ``cuda``/``cuda:0`` (factories with ``device=``, ``.to``, ``.cuda()``,
``torch.tensor``/``as_tensor``, modules moved there) is a :class:`CudaTensor`: its data is an ordinary CPU tensor,
Python code sees ``device == cuda:0`` (and ``is_cuda``), and C++ (autograd, optimisers, ``load_state_dict``) sees the
``meta`` device, which needs no driver. Every ATen op is checked as CUDA would check it and raises
:class:`DeviceMismatch` where a real GPU would raise:

* an op with a stand-in CUDA tensor and a CPU tensor of one or more dimensions (0-dim CPU tensors are allowed, as
  CUDA's TensorIterator allows CPU scalars), except copies (``copy_``, ``.to``) and the indices of ``x[idx]`` /
  ``x[idx] = v`` on a CUDA ``x`` (CPU indices are allowed there; CPU ``v`` with dimensions is not);
* a CPU tensor indexed by CUDA indices;
* a random generator on the other device than the tensor it fills (``torch.Generator("cuda")`` makes a stand-in
  CUDA generator);
* ``.numpy()`` of a CUDA tensor (TypeError, as on a GPU).

It cannot see what a GPU does differently besides devices: CUDA-only kernels and dtypes (``torch.autocast("cuda")``
is disabled without a GPU), cuda:0 vs cuda:1, streams and asynchronous errors, host synchronisations and silent
copies (correct but slow), nor code that does not run through torch (Warp kernels, MuJoCo), nor ops whose CUDA rule
differs from the emulation above. The mode is strict where the rule is unsure, so a false alarm is possible, a miss
only for the cases listed.
"""

from __future__ import annotations

import contextlib
import inspect
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode, return_and_correct_aliasing
from torch.utils._pytree import tree_flatten, tree_map

CUDA = torch.device("cuda", 0)
STAND_IN = torch.device("meta")
"""The device C++ sees for a stand-in CUDA tensor."""
_CUDA_NAME = re.compile(r"^cuda(:0)?$")
_GETTERS = {inspect.getattr_static(torch.Tensor, name): value
            for name, value in (("device", CUDA), ("is_cuda", True), ("is_cpu", False), ("is_meta", False))}
_DEVICE_GETTER = inspect.getattr_static(torch.Tensor, "device")
_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default, torch.ops.aten.copy.default,
           torch.ops.aten._copy_from.default, torch.ops.aten._copy_from_and_resize.default}
_INDEXING = {torch.ops.aten.index.Tensor, torch.ops.aten.index_put_.default, torch.ops.aten.index_put.default,
             torch.ops.aten._index_put_impl_.default}
_FROM_DATA = {torch.tensor, torch.as_tensor, torch.asarray}


class DeviceMismatch(RuntimeError):
    """An op that CUDA would reject for mixing devices."""


class CudaTensor(torch.Tensor):
    """A CPU tensor (``elem``) standing for one on cuda:0 (module docstring)."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> CudaTensor:
        r = torch.Tensor._make_wrapper_subclass(cls, elem.shape, strides=elem.stride(),
                                                storage_offset=elem.storage_offset(), dtype=elem.dtype,
                                                device=STAND_IN, requires_grad=elem.requires_grad)
        r.elem = elem
        return r

    __torch_function__ = torch._C._disabled_torch_function_impl

    def __reduce_ex__(self, protocol):  # torch.save writes the data (as a CPU tensor)
        return self.elem.__reduce_ex__(protocol)

    def __repr__(self, **kwargs: Any) -> str:
        return f"CudaTensor({self.elem!r})"

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise RuntimeError(f"{func} on a stand-in CUDA tensor outside fake_cuda()")


class CudaGenerator(torch.Generator):
    """``torch.Generator(device)`` inside :func:`fake_cuda`: a CPU generator that says it is on cuda:0 when asked."""

    def __new__(cls, device: Any = "cpu") -> CudaGenerator:
        gen = super().__new__(cls, "cpu")
        gen.on_cuda = torch.device(device).type == "cuda"
        return gen

    def __init__(self, device: Any = "cpu"):
        pass

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return CUDA if self.on_cuda else torch.device("cpu")


def _is_cuda(device: Any) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    return isinstance(device, str) and bool(_CUDA_NAME.match(device))


def _cpu_index(index: Any) -> Any:
    """Python lists and arrays in an index as CPU tensors (torch would build them on the indexed tensor's device,
    here meta, losing the values; CUDA builds them on the CPU and copies)."""
    if isinstance(index, tuple):
        return tuple(_cpu_index(i) for i in index)
    if isinstance(index, (list, np.ndarray)):
        return torch.as_tensor(np.asarray(index))
    return index


class _FunctionMode(TorchFunctionMode):
    """Python-level half: device names ``cuda`` -> the stand-in, device queries, numpy, generators."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.device:
            return func(*args, **kwargs)
        first = args[0] if args else None
        if isinstance(first, CudaTensor):
            owner = getattr(func, "__self__", None)
            if isinstance(owner, type(_DEVICE_GETTER)) and owner in _GETTERS:
                return _GETTERS[owner]
            if func is torch.Tensor.get_device:
                return 0
            if func is torch.Tensor.tolist:
                return first.elem.tolist()
            if func in (torch.Tensor.numpy, torch.Tensor.__array__):
                raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() to copy the "
                                "tensor to host memory first.")
            if func in (torch.Tensor.__getitem__, torch.Tensor.__setitem__):
                args = (first, _cpu_index(args[1]), *args[2:])
        gen = kwargs.get("generator")
        if gen is not None:
            device = kwargs.get("device")
            on_cuda = _is_cuda(device) if device is not None else any(isinstance(a, CudaTensor) for a in args)
            if getattr(gen, "on_cuda", False) != on_cuda:
                raise DeviceMismatch(f"{func.__name__}: a generator on {gen.device} for a tensor on "
                                     f"{'cuda:0' if on_cuda else 'cpu'}")
        if func in _FROM_DATA and _is_cuda(kwargs.get("device")):
            kwargs.pop("device")
            return func(*args, **kwargs).to(STAND_IN)
        if func is torch.Tensor.cuda:
            return args[0].to(STAND_IN)
        args = tuple(STAND_IN if _is_cuda(a) else a for a in args)
        kwargs = {k: STAND_IN if _is_cuda(v) else v for k, v in kwargs.items()}
        return func(*args, **kwargs)


class _DispatchMode(TorchDispatchMode):
    """ATen-level half: the device rules (module docstring), then the op on the CPU data."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        flat, _ = tree_flatten((args, kwargs))
        stand_in = [t for t in flat if isinstance(t, CudaTensor)]
        cpu = [t for t in flat if isinstance(t, torch.Tensor) and not isinstance(t, CudaTensor)]
        if any(t.device.type == "meta" for t in cpu):
            raise RuntimeError(f"{func}: a real meta tensor reached fake_cuda() (data made on the stand-in device "
                               "outside the dispatcher); extend tests/fake_cuda.py")
        device = kwargs.get("device")
        to_cuda = torch.device(device) == STAND_IN if device is not None else bool(stand_in)
        if not stand_in and not to_cuda:
            return func(*args, **kwargs)
        if stand_in and func not in _COPIES:
            indexed_on_cuda = func in _INDEXING and isinstance(args[0], CudaTensor)
            allowed = [i for i in args[1] if i is not None] if indexed_on_cuda else []
            mixed = [t for t in cpu if t.dim() > 0 and not any(t is a for a in allowed)]
            if mixed:
                raise DeviceMismatch(f"{func}: tensors on cuda:0 and on cpu (cpu shapes "
                                     f"{[tuple(t.shape) for t in mixed]})")
        unwrap = lambda t: t.elem if isinstance(t, CudaTensor) else t  # noqa: E731
        out_kwargs = tree_map(unwrap, kwargs)
        if device is not None:
            out_kwargs["device"] = torch.device("cpu")
        out = func(*tree_map(unwrap, args), **out_kwargs)
        wrapped = tree_map(lambda t: CudaTensor(t) if to_cuda and type(t) is torch.Tensor else t, out)
        return return_and_correct_aliasing(func, args, kwargs, wrapped)


@contextlib.contextmanager
def fake_cuda() -> Iterator[None]:
    """Run the block with ``cuda:0`` standing in on the CPU (module docstring); ``torch.Generator`` is
    :class:`CudaGenerator` meanwhile."""
    generator = torch.Generator
    torch.Generator = CudaGenerator  # type: ignore[misc]
    try:
        with _DispatchMode(), _FunctionMode():
            yield
    finally:
        torch.Generator = generator  # type: ignore[misc]
