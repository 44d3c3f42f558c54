"""The paper's Tables 1–3 beside ours: the paper's numbers (labelled ``paper:``), our measured means over prompts
(``ours:``: CLIP_S and the plausibility metrics), and the user-study columns from a ratings database
(:class:`~anyskill.eval.ratings.RatingStore`) — "not collected" when it holds no ratings of a method.

    table = assemble_table(1, measured_rows, ratings=store.ratings() if store else None)
    write_table(table, prov, results / "table1", notes=[...])   # table1.csv (provenance header) and table1.md
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from anyskill.eval.methods import METHODS
from anyskill.eval.rating_stats import summarise_ratings
from anyskill.eval.ratings import CRITERIA
from anyskill.provenance import Provenance

PAPER_COLUMNS = ("Success", "Natural", "Smooth", "Physics", "CLIP_S")
PAPER_TABLES: dict[int, dict[str, tuple[float, ...]]] = {
    1: {  # §4.2, Table 1: 24 MTurk raters, 5 prompts; CLIP_S of the rendered frames
        "AvatarCLIP [11]": (4.29, 4.74, 5.79, 5.74, 21.11),
        "MotionCLIP [43]": (3.16, 4.93, 5.72, 5.83, 21.16),
        "Ours (w/o ET)": (5.05, 4.88, 5.68, 5.31, 21.89),
        "Ours (w/o text-enhance)": (3.06, 4.48, 5.19, 5.96, 20.76),
        "Ours (w/ VideoCLIP [56])": (2.37, 4.90, 5.65, 6.41, 21.35),
        "Ours (full)": (6.16, 6.23, 6.51, 6.93, 24.18),
    },
    2: {  # §4.4, Table 2 (the paper prints each value with its difference to Table 1's "Ours (full)")
        "Interaction w. object": (5.42, 5.62, 5.34, 5.45, 24.49),
        "Interaction w. scene": (4.53, 4.47, 5.01, 5.41, 22.41),
    },
    3: {  # §4.5, Table 3
        "VLM-RMs [37]": (3.15, 4.36, 5.35, 5.17, 19.46),
        "CLIP-S [69]": (3.80, 5.41, 5.98, 6.21, 19.78),
        "AvgPool [56]": (5.09, 5.96, 6.55, 6.70, 20.25),
        "+ vel. rew. [32]": (2.73, 4.42, 5.35, 5.22, 18.39),
        "Ours": (6.16, 6.23, 6.51, 6.93, 24.18),
    },
}
TABLE2_ROWS = {"ball": "Interaction w. object", "door": "Interaction w. scene"}
"""Our scenes -> the rows of the paper's Table 2 (a soccer ball; a door, part of the scene)."""
MEASURED = {
    "clip_s": "CLIP_S", "foot_sliding_m_s": "foot sliding (m/s)", "penetration_max_m": "max penetration (m)",
    "jerk_mean_m_s3": "mean jerk (m/s^3)", "high_jerk_fraction": "high-jerk frames", "fell": "fall rate",
    "self_collision_fraction": "self-collision frames",
}
"""Our measured columns (rollout_metrics keys -> headers), averaged over prompts; ``fell`` becomes the fall rate."""
INTERACTION = {"ball_displacement_m": "ball displacement (m)", "door_max_angle_deg": "door max angle (deg)",
               "first_contact_s": "first contact (s)"}
NOT_COLLECTED = "not collected"
NOT_RUN = "not run"
RANDOM_NOTE = ("RANDOM CLIP WEIGHTS: our CLIP_S column and every CLIP-based reward behind these rows are meaningless "
               "(a pipeline check); only the plausibility columns measure something. Rerun with pretrained weights.")


DOMAIN_NOTE_KEY = "not CLIP"
DOMAIN_NOTE = ("Scored by the DOMAIN MODEL of this humanoid, closed vocabulary — not CLIP (anyskill/checkpoints/"
               "anyskill_domain.md): our CLIP_S column is its cosine x 100, meaningful for this humanoid's poses in "
               "its vocabulary but not comparable with the paper's CLIP numbers.")


def paper_row_name(table: int, key: str) -> str | None:
    """The paper's row for a method key (Tables 1, 3) or a scene name (Table 2)."""
    if table == 2:
        return TABLE2_ROWS.get(key)
    row = METHODS[key].paper_row
    return "Ours" if table == 3 and row == "Ours (full)" else row


def human_columns(ratings: pd.DataFrame | None, key: str) -> dict[str, str]:
    """``ours: <Criterion> (raters)`` cells for method ``key``: "mean [95 % CI] (n raters)" from the ratings
    (columns rater, method and the criteria), or "not collected"."""
    cols = {f"ours: {c.capitalize()} (raters)": NOT_COLLECTED for c in CRITERIA}
    if ratings is None or ratings.empty or key not in set(ratings["method"]):
        return cols
    summary = summarise_ratings(ratings[ratings["method"] == key]).set_index("criterion")
    for c in CRITERIA:
        s = summary.loc[c]
        ci = "" if np.isnan(s["ci_low"]) else f" [{s['ci_low']:.2f}, {s['ci_high']:.2f}]"
        cols[f"ours: {c.capitalize()} (raters)"] = f"{s['mean']:.2f}{ci} (n={int(s['n_units'])})"
    return cols


def assemble_table(table: int, measured: pd.DataFrame, ratings: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per paper row and per method we ran. ``measured``: one row per (method, prompt) with a ``method``
    key (Table 2: the scene name), ``label`` and the :func:`~anyskill.eval.rollout_metrics.rollout_metrics`
    columns. Paper rows we did not run say "not run"; our rows without a paper counterpart leave the paper's
    columns empty."""
    if table not in PAPER_TABLES:
        raise ValueError(f"table must be one of {sorted(PAPER_TABLES)}, got {table}")
    paper = PAPER_TABLES[table]
    extra = {**MEASURED, **(INTERACTION if table == 2 else {})}
    rows: list[dict[str, object]] = []
    done: set[str] = set()
    for key, group in measured.groupby("method", sort=False):
        name = paper_row_name(table, str(key))
        row: dict[str, object] = {"method": group["label"].iloc[0], "key": key, "paper row": name or "",
                                  "prompts": len(group)}
        row.update({f"paper: {c}": (paper[name][i] if name else np.nan) for i, c in enumerate(PAPER_COLUMNS)})
        for col, header in extra.items():
            values = group[col].astype(float) if col in group else pd.Series([np.nan])
            row[f"ours: {header}"] = float(values.mean()) if values.notna().any() else np.nan
        row.update(human_columns(ratings, str(key)))
        rows.append(row)
        if name:
            done.add(name)
    for name, values in paper.items():
        if name not in done:
            row = {"method": name, "key": "", "paper row": name, "prompts": 0,
                   **{f"paper: {c}": v for c, v in zip(PAPER_COLUMNS, values, strict=True)},
                   **{f"ours: {h}": NOT_RUN for h in extra.values()},
                   **{f"ours: {c.capitalize()} (raters)": NOT_RUN for c in CRITERIA}}
            rows.append(row)
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, prov: Provenance, stem: str | Path, title: str,
                notes: list[str]) -> tuple[Path, Path]:
    """Write ``stem``.csv (provenance header lines) and ``stem``.md (title, provenance incl. the CLIP weights, the
    notes — with random CLIP weights first :data:`RANDOM_NOTE` —, the table); returns both paths."""
    stem = Path(stem)
    csv = prov.write_csv(table, stem.with_suffix(".csv"))
    record = prov.as_dict()
    lines = [f"# {title}", "",
             f"- CLIP weights: **{record['clip_weights']}**",
             f"- commit {record['commit']}, seed {record['seed']}, device {record['device']}, "
             f"{record['machine']}, started {record['started']}, wall time {record['wall_time_s']} s",
             f"- config: `{record['config']}`", ""]
    if "RANDOM" in str(record["clip_weights"]):
        notes = [RANDOM_NOTE, *notes]
    elif DOMAIN_NOTE_KEY in str(record["clip_weights"]):
        notes = [DOMAIN_NOTE, *notes]
    lines += [f"> {n}" for n in notes] + [""]
    lines += ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in table.itertuples(index=False)]
    md = stem.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    return csv, md


def _cell(value: object) -> str:
    """A markdown cell: floats to 4 significant digits, NaN empty."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.4g}"
    return str(value)
