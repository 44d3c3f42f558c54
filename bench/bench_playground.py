"""Time a new text prompt in the playground at a scale, as a person pressing Train would (issue 19).

    .venv/bin/python bench/bench_playground.py [--scale laptop] [--clip-weights anyskill-domain] [--prompt TEXT]

Runs :func:`anyskill.viz.playground.run_playground` twice on the shipped controller with a fresh calibration cache:
the first run builds the state-projection calibration (timed separately, from its phase messages), the second, on
another prompt, reuses it — the time a person waits for a new prompt once the calibration is cached. Writes
``results/bench_playground.json`` (phase times, epochs, rollout file, machine, load average).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def timed_run(request, out: Path) -> dict:
    from anyskill.viz.playground import run_playground

    phases: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    run = run_playground(request, out, on_phase=lambda text: phases.append((time.perf_counter() - t0, text)))
    total = time.perf_counter() - t0
    marks = [{"at_s": round(t, 1), "phase": p} for t, p in phases]
    return {"prompt": request.prompt, "total_s": round(total, 1), "phases": marks, "epochs": request.max_epochs,
            "files": sorted(p.name for p in run.files.values()), "goal": run.goal}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="laptop")
    ap.add_argument("--clip-weights", default="anyskill-domain")
    ap.add_argument("--prompt", default="raise both arms above the head")
    ap.add_argument("--second-prompt", default="bow")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_playground.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from anyskill.provenance import Provenance
    from anyskill.viz.playground import PlaygroundRequest

    prov = Provenance("bench/bench_playground.py", config=vars(args) | {"out": str(args.out)},
                      clip_weights=args.clip_weights)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        runs = []
        for prompt in (args.prompt, args.second_prompt):
            req = PlaygroundRequest(prompt=prompt, scale=args.scale, clip_weights=args.clip_weights,
                                    projection_cache=str(cache))
            runs.append(timed_run(req, Path(tmp) / f"run{len(runs)}"))
            print(runs[-1], flush=True)
    info = {"load_average_at_end": os.getloadavg(), "cpu_count": os.cpu_count()}
    path = prov.finish().write_json({"first_prompt_with_calibration": runs[0], "new_prompt_cached": runs[1],
                                     "machine_info": info}, args.out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
