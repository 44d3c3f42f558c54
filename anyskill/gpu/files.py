"""Files that come back from a GPU machine: at most 8, each at most 16 MiB (the device tool's limits).

Shared by :mod:`anyskill.gpu.check` (``anyskill gpu-check``, which writes them) and :mod:`anyskill.gpu.ingest`
(``anyskill gpu-ingest``, which reads them):

* :func:`pack_checkpoint`: an LLC checkpoint (CALM's rl-games file or the tracking route's student) without what only
  continues training (optimiser state), float weights in fp16 when the fp32 file would exceed the limit (the
  normalisers' statistics stay fp32), split into ``NAME.partNN`` files if it still does; :func:`anyskill.llc.load_llc`
  reads the result;
* :func:`join_parts`: the whole file back from its parts (or the file itself when it was not split);
* :func:`bundle` / :func:`unbundle`: small files as one ``.tar.gz``, images dropped first if it grows too big.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
PART_BYTES = MAX_FILE_BYTES - 2**16
"""Bytes per part of a split file: just under the limit (the paper CALM controller, 31 MiB in fp16, is 2 parts)."""
KEEP_FP32 = ("running_mean_std", "count", "value_mean_std", "norm", "mean", "var", "std")
"""Keys whose tensors stay fp32 when a checkpoint is halved (normaliser statistics: small, precision matters)."""
WEIGHT_KEYS = ("model", "student")
"""Entries holding the networks' state dicts: ``model`` (CALM, rl-games) and ``student`` (the tracking route)."""
TRAINING_ONLY = ("optimizer", "optimizers", "scaler", "replay", "env_state")
"""Entries that only continue training; a packed checkpoint is for inference and evaluation."""


def _halve(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    return {k: (v.half() if isinstance(v, torch.Tensor) and v.is_floating_point() and not any(s in k for s in KEEP_FP32)
                else v) for k, v in state.items()}


def pack_checkpoint(src: str | Path, out: str | Path, limit: int = MAX_FILE_BYTES,
                    part_bytes: int = PART_BYTES) -> dict[str, Any]:
    """Write the weights of checkpoint ``src`` to ``out`` (or ``out.part00``, ``out.part01``, ... when over
    ``limit``) and return what was done: ``files`` (names), ``bytes``, ``dtype`` ("float32" or "float16")."""
    import torch

    state = torch.load(src, map_location="cpu", weights_only=False)
    keep = {k: v for k, v in state.items() if k not in TRAINING_ONLY and not k.endswith("optimizer")}
    dtype = "float32"
    blob = _serialise(keep)
    if len(blob) > limit:
        for k in WEIGHT_KEYS:
            if isinstance(keep.get(k), dict):
                keep[k] = _halve(keep[k])
        dtype = "float16"
        blob = _serialise({**keep, "packed": {"dtype": dtype, "source": Path(src).name}})
    out = Path(out)
    for old in out.parent.glob(out.name + ".part*"):
        old.unlink()
    if len(blob) <= limit:
        out.write_bytes(blob)
        files = [out.name]
    else:
        files = []
        for i in range(0, len(blob), part_bytes):
            part = out.with_name(f"{out.name}.part{i // part_bytes:02d}")
            part.write_bytes(blob[i:i + part_bytes])
            files.append(part.name)
    return {"files": files, "bytes": len(blob), "dtype": dtype, "source": str(src)}


def _serialise(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def parts_of(path: str | Path) -> list[Path]:
    """The parts of a split file (sorted), or ``[path]`` when it exists whole, or ``[]``."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(path.parent.glob(path.name + ".part[0-9][0-9]"))


def join_parts(path: str | Path, dest: str | Path) -> Path:
    """Reassemble ``path`` (whole or ``path.partNN``) into ``dest``; FileNotFoundError when neither exists."""
    parts = parts_of(path)
    if not parts:
        raise FileNotFoundError(f"neither {path} nor its parts {Path(path).name}.partNN exist")
    dest = Path(dest)
    with dest.open("wb") as f:
        for p in parts:
            f.write(p.read_bytes())
    return dest


def bundle(files: dict[str, Path], out: str | Path, limit: int = MAX_FILE_BYTES) -> dict[str, Any]:
    """``files`` (archive name -> path; missing paths are left out) as the gzipped tar ``out``. If it exceeds
    ``limit``, PNG/GIF/MP4 members are dropped, then the largest members, until it fits; returns the members kept
    and dropped."""
    present = {name: Path(p) for name, p in files.items() if Path(p).is_file()}
    order = sorted(present, key=lambda n: (n.lower().endswith((".png", ".gif", ".mp4")), present[n].stat().st_size))
    dropped: list[str] = []
    while True:
        _write_tar(out, {n: present[n] for n in order})
        if Path(out).stat().st_size <= limit or not order:
            break
        dropped.append(order.pop())
    return {"members": order, "dropped": dropped, "bytes": Path(out).stat().st_size}


def _write_tar(out: str | Path, files: dict[str, Path]) -> None:
    with tarfile.open(out, "w:gz") as tar:
        for name, path in sorted(files.items()):
            tar.add(path, arcname=name)


def unbundle(archive: str | Path, dest: str | Path) -> list[Path]:
    """Extract ``archive`` into ``dest`` (plain files only, no absolute or parent paths); the extracted paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if not member.isfile() or name.is_absolute() or ".." in name.parts:
                raise ValueError(f"{archive}: refusing member {member.name!r} (only relative plain files)")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tar.extractfile(member)
            assert src is not None
            target.write_bytes(src.read())
            out.append(target)
    return out
