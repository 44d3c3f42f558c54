"""Measured wall time of executed notebooks, from papermill's own records, into one results file.

    .venv/bin/anyskill reproduce --scale laptop --only 06 --out outputs/laptop   # one notebook at a time, alone
    .venv/bin/python scripts/notebook_times.py outputs/laptop     # -> results/notebook_times_laptop.json

For every ``OUT/executed/NN_*.ipynb`` that papermill finished without an error it records the notebook's wall time,
its parameters, the five slowest cells (first line of code, seconds) and what the cache held: a calibration built on
first use is part of the time (the notebook's own output says so). Notebooks still running or failed are listed as
such, with no time. The README's compute table quotes this file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from anyskill.provenance import REPO_ROOT, Provenance


def _cell_times(nb: dict) -> list[dict]:
    rows = []
    for k, cell in enumerate(nb["cells"]):
        meta = cell.get("metadata", {}).get("papermill", {})
        if cell["cell_type"] != "code" or meta.get("duration") is None:
            continue
        first = next((ln for ln in "".join(cell["source"]).splitlines() if ln.strip()), "")
        rows.append({"cell": k, "seconds": round(meta["duration"], 1), "code": first[:100]})
    return sorted(rows, key=lambda r: -r["seconds"])


def notebook_record(path: Path) -> dict:
    """Time and slowest cells of one executed notebook (``status`` "finished", "failed" or "unfinished")."""
    nb = json.loads(path.read_text())
    pm = nb["metadata"].get("papermill", {})
    cells = _cell_times(nb)
    if pm.get("exception"):
        status = "failed"
    elif pm.get("duration") is None:
        status = "unfinished"
    else:
        status = "finished"
    texts = " ".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                     for o in c.get("outputs", []))
    return {"notebook": path.name, "status": status,
            "wall_s": round(pm["duration"], 1) if status == "finished" else None,
            "wall_min": round(pm["duration"] / 60, 1) if status == "finished" else None,
            "started": pm.get("start_time"), "parameters": pm.get("parameters", {}),
            "calibrated_on_first_use": "calibrating the state projection" in texts,
            "slowest_cells": cells[:5]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the --out folder of anyskill reproduce")
    p.add_argument("--note", default="", help="how it was run (alone on the machine? threads?)")
    p.add_argument("--results", type=Path, help="default results/notebook_times_<scale>.json")
    args = p.parse_args(argv)
    books = sorted((args.out / "executed").glob("[0-9][0-9]_*.ipynb"))
    if not books:
        print(f"error: no executed notebooks under {args.out / 'executed'}", file=sys.stderr)
        return 2
    rows = [notebook_record(b) for b in books]
    scales = {r["parameters"].get("scale") for r in rows}
    if len(scales) != 1:
        print(f"error: the executed notebooks mix scales {sorted(map(str, scales))}", file=sys.stderr)
        return 2
    scale = scales.pop()
    out = args.results or REPO_ROOT / "results" / f"notebook_times_{scale}.json"
    prov = Provenance("scripts/notebook_times.py", config={"out": str(args.out), "scale": scale, "note": args.note})
    prov.write_json({"notebooks": rows, "cpu_count": os.cpu_count(), "note": args.note}, out)
    for r in rows:
        time_s = f"{r['wall_min']:6.1f} min" if r["wall_min"] is not None else f"{r['status']:>10s}"
        print(f"{r['notebook']:40s} {time_s}  slowest: "
              + "; ".join(f"{c['seconds']:.0f} s {c['code'][:40]!r}" for c in r["slowest_cells"][:2]))
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
