"""``anyskill calibrate``: build (or show) the cached state projection for a CLIP model, controller and scene."""

from __future__ import annotations

import argparse

from anyskill.config import SCALES
from anyskill.reward.fast_encode import PRECISIONS


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    import anyskill.sim.render  # noqa: F401  (before open_clip: torchvision ahead of the EGL context)
    from anyskill.hlc.projection_cache import calibrated_projection
    from anyskill.llc.shipped import shipped_llc
    from anyskill.reward.clip_model import DEFAULT_PRETRAINED, ClipModel, ClipSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    clip_model = ClipModel(ClipSpec(weights=args.clip_weights or DEFAULT_PRETRAINED, device=args.device))
    cal = calibrated_projection(clip_model, args.llc or shipped_llc(), scene=args.scene, scale=args.scale,
                                cache_dir=args.cache_dir, precision=args.precision, progress=not args.no_progress,
                                on_status=print, rebuild=args.rebuild)
    print(cal.summary())
    for prompt, rho in cal.fidelity["text_rank_correlation"].items():
        print(f"  rank correlation {rho:+.3f}  {prompt!r}")
    print(f"cache file: {cal.path}\nrecord: {cal.path.with_suffix('.json')}")
    return 0


def add_calibrate_command(sub) -> None:
    """Add ``calibrate`` to the ``anyskill`` sub-command parser ``sub``."""
    c = sub.add_parser("calibrate", help="fit the state projection for a CLIP model once (rendered rollouts of the "
                       "controller) and cache it; train-hlc, the playground and the notebooks reuse it")
    c.add_argument("--clip-weights", help="open_clip pretrained tag (default laion2b_s34b_b79k), checkpoint file, or "
                   "'random' (pipeline tests only)")
    c.add_argument("--scene", choices=["ball", "door"], help="interaction scene: an object-aware projection")
    c.add_argument("--llc", help="low-level controller checkpoint (default: the shipped one)")
    c.add_argument("--scale", default="laptop", choices=SCALES, help="calibration size (default laptop)")
    c.add_argument("--cache-dir", help="default $ANYSKILL_CACHE/projection or ~/.cache/anyskill/projection")
    c.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="CLIP encoder on the CPU (auto: bfloat16 where the CPU has AVX512-BF16 or AMX, else "
                   "float32; int8: ~1.6x faster on AVX2-only CPUs, refused when its measured error is too large)")
    c.add_argument("--device", default="cpu")
    c.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    c.add_argument("--rebuild", action="store_true", help="calibrate again even when the cache holds it")
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_calibrate)
