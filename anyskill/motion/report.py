"""A motion library summed up: one row per clip with its summary, conversion or retargeting errors and ground contact
(:func:`dataset_report`, read by notebook 01 and :mod:`anyskill.viz.dataset`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from anyskill.motion.library import MotionLibrary
from anyskill.motion.quality import ground_report

if TYPE_CHECKING:
    import pandas as pd


def dataset_report(lib: MotionLibrary) -> pd.DataFrame:
    """One row per clip of a MotionLibrary: summary, conversion/retargeting errors and ground contact."""
    import pandas as pd

    rows = []
    summary = lib.summary()
    for i, clip in enumerate(lib.clips):
        conv = clip.meta.get("conversion") or {}
        ret = clip.meta.get("retarget") or {}
        row = {
            **summary.iloc[i].to_dict(),
            "authored": bool(clip.meta.get("authored", False)),
            "fk_error_max_cm": 100 * conv["fk_error_clamped_max_m"] if conv else float("nan"),
            "limit_violations": len(conv.get("limit_violations_rad", {})) if conv else 0,
            "ground_shift_cm": 100 * clip.meta.get("ground_shift_m", 0.0),
            "retarget_bone_error_mean_deg": ret.get("bone_error_mean_deg", float("nan")),
        }
        row.update(ground_report(clip))
        rows.append(row)
    return pd.DataFrame(rows)
