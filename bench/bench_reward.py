"""Frames per second of the CLIP reward path: render only, encode only, render + encode, and the projection MLP.

States are reference poses of the bundled clips (so the humanoid is visible in every frame). Rendering is MuJoCo's
OpenGL renderer on EGL (software Mesa on CPU machines, the NVIDIA driver on GPU machines); CLIP is open_clip
ViT-B-32 (random weights: speed does not depend on the weights), fp16 on CUDA. The projection MLP predicts the same
512-D feature from body positions; its rate is the ceiling of the projection reward source.

**Before / after, same process.** "before" is the default renderer (4x multisampling, shadows, reflections) with
``ClipModel.encode_images`` in float32; "after" is ``StateRenderer(fast=True)`` (:data:`anyskill.sim.render.
FAST_RENDER`) with :class:`anyskill.reward.fast_encode.BatchedImageEncoder` (bfloat16 where the CPU has AVX512-BF16
or AMX). The ratios and the largest cosine error of the "after" features against float32 on default renders are
recorded with the machine's load average (other processes slow every number down). "after_int8" is the same with
the opt-in int8 encoder (``precision="int8"``; its error on random weights is not that of trained weights, which the
encoder checks itself on first use).

    .venv/bin/python bench/bench_reward.py                   # CPU -> results/bench_reward.json
    .venv/bin/python bench/bench_reward.py --device cuda:0   # CLIP on the GPU (rendering stays on EGL)
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

import anyskill.sim.render as render  # noqa: I001 (before open_clip: torchvision must load before the EGL context)
from anyskill.data import default_library
from anyskill.provenance import Provenance
from anyskill.reward.clip_model import ClipModel, ClipSpec
from anyskill.reward.projection import StateProjection

ROOT = Path(__file__).resolve().parent.parent


def _best(fn, rounds: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--threads", type=int, help="torch threads (default: all cores)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench_reward.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads or os.cpu_count() or 1)
    from anyskill.reward.fast_encode import BatchedImageEncoder, cpu_bf16_flags, max_cosine_error
    load_before = os.getloadavg()
    lib = default_library()
    gen = torch.Generator().manual_seed(0)
    ids = lib.sample_clips(args.frames, generator=gen)
    s = lib.state_at(ids, lib.sample_times(ids, generator=gen))
    qpos = torch.cat([s.root_pos, s.root_rot, s.dof_pos], dim=-1).double().numpy()
    renderer = render.StateRenderer(lib.model.mj_model(), render.CameraSpec())
    clip = ClipModel(ClipSpec(weights="random", device=args.device, half=args.device.startswith("cuda")))
    frames = renderer.render_qpos(qpos)
    fast_renderer = render.StateRenderer(lib.model.mj_model(), render.CameraSpec(), fast=True)
    encoder = BatchedImageEncoder(clip, "auto", batch_size=args.frames)
    int8 = BatchedImageEncoder(clip, "int8", batch_size=args.frames) if args.device == "cpu" else None
    proj = StateProjection().to(args.device)
    body = s.body_pos.to(args.device)

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    t_render = _best(lambda: renderer.render_qpos(qpos), args.rounds)
    t_encode = _best(lambda: (clip.encode_images(frames), sync()), args.rounds)
    t_both = _best(lambda: (clip.encode_images(renderer.render_qpos(qpos)), sync()), args.rounds)
    fast_frames = fast_renderer.render_qpos(qpos)
    t_render_fast = _best(lambda: fast_renderer.render_qpos(qpos), args.rounds)
    t_encode_fast = _best(lambda: (encoder.encode(fast_frames), sync()), args.rounds)
    t_both_fast = _best(lambda: (encoder.encode(fast_renderer.render_qpos(qpos)), sync()), args.rounds)
    t_int8 = {}
    if int8 is not None:
        t_int8["encode"] = _best(lambda: int8.encode(fast_frames), args.rounds)
        t_int8["both"] = _best(lambda: int8.encode(fast_renderer.render_qpos(qpos)), args.rounds)
    reference = clip.encode_images(frames)
    err_precision = max_cosine_error(encoder.encode(frames), reference)
    err_total = max_cosine_error(encoder.encode(fast_frames), reference)
    err_render = max_cosine_error(clip.encode_images(fast_frames), reference)
    with torch.no_grad():
        t_proj = _best(lambda: (proj(body), sync()), args.rounds * 10)
    n = args.frames
    row = {
        "frames": n,
        "render_fps": round(n / t_render, 2),
        "encode_fps": round(n / t_encode, 2),
        "render_and_encode_fps": round(n / t_both, 2),
        "projection_fps": round(n / t_proj, 1),
        "projection_over_render_and_encode": round(t_both / t_proj, 1),
        "after": {"render_fps": round(n / t_render_fast, 2), "encode_fps": round(n / t_encode_fast, 2),
                  "render_and_encode_fps": round(n / t_both_fast, 2), "encoder": encoder.description,
                  "render": "FAST_RENDER"},
        "after_over_before": {"render": round(t_render / t_render_fast, 2),
                              "encode": round(t_encode / t_encode_fast, 2),
                              "render_and_encode": round(t_both / t_both_fast, 2)},
        "max_cosine_error_vs_fp32_default_render": {"encoder_precision": err_precision, "fast_render": err_render,
                                                     "both": err_total},
        "after_int8": None if int8 is None else {
            "render_fps": round(n / t_render_fast, 2), "encode_fps": round(n / t_int8["encode"], 2),
            "render_and_encode_fps": round(n / t_int8["both"], 2), "encoder": int8.description,
            "over_before": {"encode": round(t_encode / t_int8["encode"], 2),
                            "render_and_encode": round(t_both / t_int8["both"], 2)},
            "max_cosine_error_vs_fp32": {"encoder_precision": max_cosine_error(int8.encode(frames), reference),
                                         "both": max_cosine_error(int8.encode(fast_frames), reference)},
            "weights": "random (the error of trained weights is checked by the encoder on first use)"},
        "cpu_bf16_flags": list(cpu_bf16_flags()),
        "clip_device": args.device,
        "clip_dtype": str(clip.dtype),
        "torch_threads": torch.get_num_threads(),
        "mujoco_gl": os.environ.get("MUJOCO_GL"),
    }
    print(json.dumps(row, indent=1))
    prov = Provenance("bench/bench_reward.py", config=vars(args) | {"out": str(args.out)}, device=args.device,
                      clip_weights=clip.spec.description)
    prov.write_json({"results": row, "load_average": os.getloadavg(), "load_average_before": load_before,
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "cpu_count": os.cpu_count(), "frame_shape": list(np.asarray(frames.shape))}, args.out)


if __name__ == "__main__":
    main()
