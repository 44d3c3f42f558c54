"""Run the numbered notebooks headlessly with papermill (the project's main job).

``anyskill reproduce --scale smoke --out outputs/smoke`` executes ``notebooks/NN_*.ipynb`` in order,
writing the executed notebooks to ``OUT/executed/`` and their figures and tables to ``OUT/figures/`` and
``OUT/results/``. ``--out .`` regenerates the repository's own ``figures/`` and ``results/``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from anyskill.config import check_scale
from anyskill.provenance import REPO_ROOT

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
              seed: int = 0, device: str | None = None) -> int:
    """Run the notebooks; print a line per notebook; return a process exit code (0 = all passed).

    ``device``: passed to every notebook (default: the scale's, i.e. ``cuda:0`` for ``paper`` where CUDA is
    available, else ``cpu``)."""
    from anyskill.rl.runner import resolve_device

    check_scale(scale)
    out = Path(out)
    books = list_notebooks(only)
    device = resolve_device(device, scale)
    print(f"anyskill reproduce: {len(books)} notebook(s) at scale '{scale}' on {device} -> {out}/", flush=True)
    start = time.perf_counter()
    for nb in books:
        t0 = time.perf_counter()
        print(f"  {nb.name} ...", end=" ", flush=True)
        try:
            run_notebook(nb, out, scale, seed, extra={"device": device})
        except NotebookFailed as e:
            print("FAILED", flush=True)
            print(f"error: {e}\n  executed copy with the traceback: {out / 'executed' / nb.name}", file=sys.stderr)
            return 1
        print(f"ok ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"all {len(books)} notebook(s) passed in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    return 0
