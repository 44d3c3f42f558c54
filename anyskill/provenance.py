"""How a figure or a table was made: commit, config, seed, device, CLIP weights, wall time, machine.

Every file under ``figures/`` and ``results/`` carries this record: CSV files as ``# key: value`` header
lines (read back with ``pandas.read_csv(path, comment="#")``), JSON files under a ``"provenance"`` key, PNG
files in their metadata (``PIL.Image.open(path).info["provenance"]``) and in a ``.json`` sidecar.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: Path = REPO_ROOT) -> str:
    """Current commit hash, with ``+dirty`` when the work tree has changes; ``unknown`` outside git. ``ANYSKILL_COMMIT``
    overrides it (a copy of the tree on another machine whose git metadata is stale or absent)."""
    import os

    if os.environ.get("ANYSKILL_COMMIT"):
        return os.environ["ANYSKILL_COMMIT"]

    def git(*args: str, check: bool = False) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=check).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD", check=True)
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> str:
    import torch

    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()} | {platform.processor() or platform.machine()} x{os.cpu_count()} | {dev}"


@dataclass
class Provenance:
    """Record of how a result was produced. Start it before the work; ``finish()`` stamps the wall time."""

    notebook: str
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    device: str = "cpu"
    clip_weights: str = "none"
    commit: str = field(default_factory=git_commit)
    machine: str = field(default_factory=machine)
    started: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    wall_time_s: float | None = None
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    def finish(self) -> Provenance:
        self.wall_time_s = round(time.perf_counter() - self._t0, 2)
        return self

    def as_dict(self) -> dict[str, Any]:
        """The record; ``wall_time_s`` is the time so far unless :meth:`finish` froze it."""
        wall = self.wall_time_s if self.wall_time_s is not None else round(time.perf_counter() - self._t0, 2)
        return {
            "notebook": self.notebook,
            "commit": self.commit,
            "config": self.config,
            "seed": self.seed,
            "device": self.device,
            "clip_weights": self.clip_weights,
            "machine": self.machine,
            "started": self.started,
            "wall_time_s": wall,
        }

    def write_csv(self, df, path: str | Path) -> Path:
        """Write a pandas DataFrame with ``# key: value`` provenance header lines."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            for k, v in self.as_dict().items():
                f.write(f"# {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}\n")
            df.to_csv(f, index=False)
        return path

    def write_json(self, data: dict, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"provenance": self.as_dict(), **data}, indent=2, default=float) + "\n")
        return path

    def save_figure(self, fig, path: str | Path, dpi: int = 110) -> Path:
        """Save a matplotlib figure as PNG with the provenance in its metadata and a JSON sidecar."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = json.dumps(self.as_dict(), default=str)
        fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"provenance": record})
        path.with_suffix(".json").write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")
        return path


def read_csv(path: str | Path):
    """Read a CSV written by :meth:`Provenance.write_csv`: returns (DataFrame, provenance dict)."""
    import pandas as pd

    meta: dict[str, Any] = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("# "):
                break
            key, _, value = line[2:].rstrip("\n").partition(": ")
            meta[key] = value
    return pd.read_csv(path, comment="#"), meta
