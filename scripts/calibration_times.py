"""How long calibrations took and how faithful they are, from the cache's own records, into one results file.

    .venv/bin/anyskill calibrate --clip-weights random --scale laptop --precision fp32 --cache-dir C
    .venv/bin/anyskill calibrate --clip-weights random --scale laptop --precision int8 --cache-dir C
    .venv/bin/python scripts/calibration_times.py C ~/.cache/anyskill/projection   # -> results/calibration_times.json

Each cache record (``*.json`` beside its ``*.pt``) already holds the calibration's inputs, timings, encoder (with its
measured error against float32) and held-out fidelity; this gathers one row per record, newest first per key. The
README's compute table quotes the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from anyskill.provenance import REPO_ROOT, Provenance


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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cache_dirs", type=Path, nargs="+")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "calibration_times.json")
    args = p.parse_args(argv)
    records = [f for d in args.cache_dirs for f in sorted(d.glob("*.json")) if f.with_suffix(".pt").exists()]
    if not records:
        print(f"error: no calibration records (*.json beside *.pt) in {[str(d) for d in args.cache_dirs]}",
              file=sys.stderr)
        return 2
    rows = sorted((calibration_row(f) for f in records), key=lambda r: (r["scene"], r["clip"], r["encoder"]))
    Provenance("scripts/calibration_times.py", config={"cache_dirs": [str(d) for d in args.cache_dirs]}).write_json(
        {"calibrations": rows}, args.out)
    for r in rows:
        print(f"{r['scene']:9s} {r['clip'][:40]:40s} {r['encoder'][:45]:45s} {r['total_min']:5.1f} min "
              f"{r['frames_per_s']:6.1f} frames/s  cosine {r['heldout_feature_cosine_mean']:.3f}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
