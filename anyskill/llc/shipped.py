"""Low-level controllers shipped with the package (``anyskill/checkpoints``), best first."""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
SHIPPED = ("llc_paper.pth", "llc_laptop.pth")
"""The GPU-trained controller when there is one, else the CPU-trained ``laptop`` one."""


def shipped_llc(name: str | None = None) -> Path:
    """Path of a shipped LLC checkpoint (default: the best available); its model card is the ``.md`` beside it."""
    names = (name,) if name else SHIPPED
    for n in names:
        path = CHECKPOINTS / n
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no shipped low-level controller {names} in {CHECKPOINTS}; train one with "
        "`anyskill train-llc --scale laptop` and pass its checkpoint path instead"
    )
