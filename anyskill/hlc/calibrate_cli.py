"""``anyskill calibrate``: build (or show) the cached state projection for a CLIP model, controller and scene;
``anyskill calibration-times``: gather the cache's records of calibrations (time, encoder, fidelity) into one file::

    anyskill calibrate --clip-weights random --scale laptop --precision fp32 --cache-dir C
    anyskill calibrate --clip-weights random --scale laptop --precision int8 --cache-dir C
    anyskill calibration-times C ~/.cache/anyskill/projection   # -> results/calibration_times.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from anyskill.config import SCALES
from anyskill.provenance import REPO_ROOT
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


def calibration_row(path: Path) -> dict:
    """One record's row: what was calibrated, on what, how long it took, how faithful it is."""
    r = json.loads(path.read_text())
    fid = r["fidelity"]
    return {"file": path.name, "clip": r["inputs"]["clip"], "scene": r["inputs"]["scene"] or "humanoid",
            "encoder": r["data"]["encoder"], "frames": r["timings"]["frames"],
            "total_s": r["timings"]["total_s"], "total_min": round(r["timings"]["total_s"] / 60, 1),
            "frames_per_s": r["timings"]["frames_per_s"], "render_s": r["timings"].get("render_s"),
            "encode_s": r["timings"].get("encode_s"), "fit_s": r["timings"]["fit_s"],
            "heldout_feature_cosine_mean": round(fid["feature_cosine_mean"], 4),
            "heldout_text_rank_correlation_mean": round(fid["text_rank_correlation_mean"], 3),
            "fidelity_meaning": fid.get("meaning"), "started": r["provenance"]["started"],
            "commit": r["provenance"]["commit"], "machine": r["provenance"]["machine"]}


def _calibration_times(args: argparse.Namespace) -> int:
    """``anyskill calibration-times``: how long calibrations took and how faithful they are, from the cache's own
    records (each ``*.json`` beside its ``*.pt`` holds the inputs, timings, encoder and held-out fidelity), one row
    per record, into one results file (the README's compute table quotes it)."""
    from anyskill.provenance import Provenance

    records = [f for d in args.cache_dirs for f in sorted(d.glob("*.json")) if f.with_suffix(".pt").exists()]
    if not records:
        print(f"error: no calibration records (*.json beside *.pt) in {[str(d) for d in args.cache_dirs]}",
              file=sys.stderr)
        return 2
    rows = sorted((calibration_row(f) for f in records), key=lambda r: (r["scene"], r["clip"], r["encoder"]))
    Provenance("anyskill calibration-times", config={"cache_dirs": [str(d) for d in args.cache_dirs]}).write_json(
        {"calibrations": rows}, args.out)
    for r in rows:
        print(f"{r['scene']:9s} {r['clip'][:40]:40s} {r['encoder'][:45]:45s} {r['total_min']:5.1f} min "
              f"{r['frames_per_s']:6.1f} frames/s  cosine {r['heldout_feature_cosine_mean']:.3f}")
    print(f"-> {args.out}")
    return 0


def add_calibrate_command(sub) -> None:
    """Add ``calibrate`` and ``calibration-times`` to the ``anyskill`` sub-command parser ``sub``."""
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

    t = sub.add_parser("calibration-times", help="gather the cache's calibration records (time, frames/s, encoder, "
                       "held-out fidelity) into results/calibration_times.json")
    t.add_argument("cache_dirs", type=Path, nargs="+", help="projection cache folders")
    t.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "calibration_times.json")
    t.set_defaults(func=_calibration_times)
