"""Run the numbered notebooks headlessly with papermill (the project's main job).

``anyskill reproduce --scale smoke --out outputs/smoke`` executes ``notebooks/NN_*.ipynb`` in order,
writing the executed notebooks to ``OUT/executed/`` and their figures and tables to ``OUT/figures/`` and
``OUT/results/``. ``--out .`` regenerates the repository's own ``figures/`` and ``results/``.

``--executor ray`` hands the independent high-level trainings of the table notebooks (07-09: prompts x methods) to
Ray (:mod:`anyskill.eval.executor`): a local Ray on this machine, or the cluster at ``--ray-address``; each training
writes into its run folder with its record (``task.json``), and a rerun redoes only the trainings that did not
finish. Notebooks without an ``executor`` parameter run as before.

``anyskill notebook-times OUT`` gathers the measured wall time of the executed notebooks from papermill's own records
into ``results/notebook_times_<scale>.json`` (the README's compute table quotes it): run the notebooks one at a
time, alone on the machine, e.g. ``anyskill reproduce --scale laptop --only 06 --out outputs/laptop``, then
``anyskill notebook-times outputs/laptop``. For every ``OUT/executed/NN_*.ipynb`` that papermill finished without an
error it records the notebook's wall time, its parameters, the five slowest cells (first line of code, seconds) and
whether a calibration was built on first use (part of the time; the notebook's own output says so). Notebooks still
running or failed are listed as such, with no time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from anyskill.config import check_scale
from anyskill.provenance import REPO_ROOT, Provenance

NOTEBOOKS = REPO_ROOT / "notebooks"


class NotebookFailed(RuntimeError):
    def __init__(self, notebook: Path, cause: BaseException):
        self.notebook = notebook
        super().__init__(f"notebook {notebook.name} failed: {type(cause).__name__}: {cause}")


def list_notebooks(only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in order; ``only`` filters by prefix or name (e.g. ``["01"]``)."""
    books = sorted(p for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        books = [p for p in books if any(p.name.startswith(o) or p.stem == o for o in only)]
        if not books:
            raise ValueError(f"no notebook matches {only}; available: {[p.name for p in NOTEBOOKS.glob('*.ipynb')]}")
    return books


def run_notebook(nb: Path, out: Path, scale: str, seed: int = 0, extra: dict | None = None) -> Path:
    """Execute one notebook; returns the executed copy's path. Raises :class:`NotebookFailed`."""
    import papermill as pm

    out = out.resolve()
    executed = out / "executed" / nb.name
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {"scale": scale, "seed": seed, "output_root": str(out)}
    params.update(extra or {})
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        pm.execute_notebook(str(nb), str(executed), parameters=params, cwd=str(REPO_ROOT), progress_bar=False,
                            kernel_name="python3")
    except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
        raise NotebookFailed(nb, e) from e
    return executed


def reproduce(scale: str = "smoke", out: str | Path = "outputs/smoke", only: list[str] | None = None,
              seed: int = 0, device: str | None = None, executor: str = "inprocess",
              ray_address: str | None = None, latent_action: str | None = None,
              anchor_scale: float | None = None) -> int:
    """Run the notebooks; print a line per notebook; return a process exit code (0 = all passed).

    ``device``: passed to every notebook (default: the scale's, i.e. ``cuda:0`` for ``paper`` where CUDA is
    available, else ``cpu``). ``executor`` ("inprocess" | "ray") and ``ray_address``: where the notebooks that take
    an ``executor`` parameter run their trainings (module docstring). ``latent_action`` and ``anchor_scale`` (None:
    each notebook's own): how the high-level policies of the notebooks that take them (07-09) act on the latents."""
    from anyskill.rl.runner import resolve_device

    check_scale(scale)
    out = Path(out)
    books = list_notebooks(only)
    device = resolve_device(device, scale)
    fan_out = {} if executor == "inprocess" else {"executor": executor, "ray_address": ray_address or ""}
    action = {k: v for k, v in (("latent_action", latent_action), ("anchor_scale", anchor_scale)) if v is not None}
    where = f", trainings by {executor}" + (f" at {ray_address}" if ray_address else "") if fan_out else ""
    print(f"anyskill reproduce: {len(books)} notebook(s) at scale '{scale}' on {device}{where} -> {out}/", flush=True)
    start = time.perf_counter()
    for nb in books:
        t0 = time.perf_counter()
        print(f"  {nb.name} ...", end=" ", flush=True)
        try:
            names = notebook_parameters(nb) if fan_out or action else set()
            extra = {"device": device, **(fan_out if "executor" in names else {}),
                     **{k: v for k, v in action.items() if k in names}}
            run_notebook(nb, out, scale, seed, extra=extra)
        except NotebookFailed as e:
            print("FAILED", flush=True)
            print(f"error: {e}\n  executed copy with the traceback: {out / 'executed' / nb.name}", file=sys.stderr)
            return 1
        print(f"ok ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"all {len(books)} notebook(s) passed in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return 0


def notebook_parameters(nb: Path) -> set[str]:
    """The names the notebook's ``parameters`` cell defines."""
    import papermill as pm

    return set(pm.inspect_notebook(str(nb)))


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


def _notebook_times(args: argparse.Namespace) -> int:
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
    prov = Provenance("anyskill notebook-times", config={"out": str(args.out), "scale": scale, "note": args.note})
    prov.write_json({"notebooks": rows, "cpu_count": os.cpu_count(), "note": args.note}, out)
    for r in rows:
        time_s = f"{r['wall_min']:6.1f} min" if r["wall_min"] is not None else f"{r['status']:>10s}"
        print(f"{r['notebook']:40s} {time_s}  slowest: "
              + "; ".join(f"{c['seconds']:.0f} s {c['code'][:40]!r}" for c in r["slowest_cells"][:2]))
    print(f"-> {out}")
    return 0


def add_notebook_times_command(sub) -> None:
    """Register ``notebook-times`` on the ``anyskill`` parser's sub-parsers."""
    p = sub.add_parser("notebook-times", help="gather the measured wall time of executed notebooks (papermill's "
                       "records) into results/notebook_times_<scale>.json")
    p.add_argument("out", type=Path, help="the --out folder of anyskill reproduce")
    p.add_argument("--note", default="", help="how it was run (alone on the machine? threads?)")
    p.add_argument("--results", type=Path, help="default results/notebook_times_<scale>.json")
    p.set_defaults(func=_notebook_times)
