"""Warp kernels compiled ahead of time for a GPU architecture, on any machine (no GPU needed).

A cold GPU machine spends minutes compiling MuJoCo Warp's kernels before the first physics step (> 2 min measured on
an H200, ``../shared/gpu-runs``). Warp compiles CUDA code with its own NVRTC, so the same kernels can be compiled here:
:func:`build_kernel_cache` steps a :class:`~anyskill.sim.warp_backend.WarpBackend` on Warp's CPU device (which creates
every kernel module the physics uses, specialised to this humanoid's model), then compiles each module for ``arch``
(``wp.compile_aot_module``) into a folder laid out as Warp's kernel cache. On the GPU machine, ``WARP_CACHE_PATH``
pointing at that folder makes Warp load those modules instead of compiling them; a module whose hash differs there
(another Warp version, a kernel only the CUDA path creates, another block size) is compiled as before, so a stale cache
costs time, never correctness.

``python -m anyskill.sim.warp_cache OUT.tar.xz [--arch 90]`` writes the cache as one archive (~1.5 MB for sm_90).
"""

from __future__ import annotations

import argparse
import lzma
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path


def build_kernel_cache(out_dir: str | Path, arch: int = 90, worlds: int = 2) -> dict:
    """Compile every Warp module of the humanoid's physics for ``arch`` into ``out_dir`` (Warp's cache layout:
    ``out_dir/<warp version>/<module id>/<module id>.sm<arch>.cubin`` + ``.meta``). Returns counts and times."""
    import torch
    import warp as wp
    from warp._src import context as wp_context

    from anyskill.sim.warp_backend import WarpBackend

    t = time.time()
    backend = WarpBackend(worlds, device="cpu")
    backend.set_pd_targets(torch.zeros(worlds, backend.model.num_dofs))
    backend.step(4)
    created_s = time.time() - t
    root = Path(out_dir) / wp.config.version
    root.mkdir(parents=True, exist_ok=True)
    t = time.time()
    compiled = 0
    with tempfile.TemporaryDirectory() as tmp:
        for module in list(wp_context.user_modules.values()):
            if not module.kernels:
                continue
            target = Path(tmp) / f"m{compiled}"
            paths = wp.compile_aot_module(module, arch=arch, module_dir=target)
            for binary in paths:
                stem = binary.name.split(f".sm{arch}")[0]
                dest = root / stem
                dest.mkdir(exist_ok=True)
                shutil.copy2(binary, dest / binary.name)
                meta = binary.with_name(f"{stem}.meta")
                if meta.is_file():
                    shutil.copy2(meta, dest / meta.name)
            compiled += 1
    return {"modules": compiled, "arch": arch, "warp": wp.config.version, "create_s": created_s,
            "compile_s": time.time() - t}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m anyskill.sim.warp_cache", description=__doc__.split("\n")[0])
    ap.add_argument("out", help="archive to write (.tar.xz)")
    ap.add_argument("--arch", type=int, default=90, help="CUDA compute capability, e.g. 90 for H100/H200 (default)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        info = build_kernel_cache(tmp, arch=args.arch)
        with lzma.open(args.out, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
            for p in sorted(Path(tmp).iterdir()):
                tar.add(p, arcname=p.name)
    print(f"{info['modules']} modules for sm_{info['arch']} (Warp {info['warp']}) in {info['compile_s']:.0f} s "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
